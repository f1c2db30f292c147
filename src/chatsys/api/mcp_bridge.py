"""``chatsys mcp``: chatsys' own API as MCP tools, so MCP clients can use chatsys.

The tools call the chatsys HTTP API (``api_url``) with httpx; they hold no
state of their own. Served over stdio or streamable HTTP (``/mcp``).
"""

from __future__ import annotations

import json
from typing import Any, Literal

import httpx
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from chatsys.domain.tasks.model import TaskStatus


def _answer(response: httpx.Response) -> str:
    if response.is_success:
        return json.dumps(response.json(), indent=2)
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    raise ToolError(f"chatsys answered {response.status_code}: {detail}")


def build_bridge(api_url: str, *, api_key: str | None = None, timeout: float = 30.0) -> MCPServer:
    server: MCPServer = MCPServer(
        "chatsys",
        instructions="Submit requests to the chatsys multi-agent service and read their results."
        " A task runs in the background: submit it, then get it until its status is final.",
        log_level="WARNING",
    )
    base = api_url.rstrip("/")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def request(method: str, path: str, **kwargs: Any) -> str:
        async with httpx.AsyncClient(base_url=base, timeout=timeout, headers=headers) as client:
            try:
                response = await client.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                raise ToolError(f"chatsys at {base} cannot be reached: {exc}") from None
        return _answer(response)

    @server.tool()
    async def submit_task(
        input: str,
        conversation_id: str | None = None,
        agents: list[str] | None = None,
    ) -> str:
        """Submit a request to chatsys; returns the queued task (use get_task for its result)."""
        body: dict[str, Any] = {"input": input}
        if agents:
            body["agents"] = agents
        if conversation_id:
            body["conversation_id"] = conversation_id
        return await request("POST", "/v1/tasks", json=body)

    @server.tool()
    async def get_task(task_id: str) -> str:
        """A task with its status, steps, result and error."""
        return await request("GET", f"/v1/tasks/{task_id}")

    @server.tool()
    async def list_tasks(limit: int = 20, status: TaskStatus | None = None) -> str:
        """The newest tasks first (optionally only those with this status)."""
        params: dict[str, Any] = {"limit": max(1, min(limit, 100))}
        if status is not None:
            params["status"] = status.value
        return await request("GET", "/v1/tasks", params=params)

    return server


async def serve(
    api_url: str,
    *,
    transport: Literal["stdio", "http"],
    host: str,
    port: int,
    api_key: str | None = None,
) -> None:
    bridge = build_bridge(api_url, api_key=api_key)
    if transport == "stdio":
        await bridge.run_stdio_async()
    else:
        await bridge.run_streamable_http_async(host=host, port=port)
