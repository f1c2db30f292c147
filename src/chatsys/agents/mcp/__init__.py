"""MCP: the manager of MCP client sessions, the tools it gives agents, and the
built-in workspace server. Nothing here imports LiteLLM (the API process uses it)."""
