"""Role agents and the LLM and tool adapters they use (LiteLLM gateway, MCP manager)."""
