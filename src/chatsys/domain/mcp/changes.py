"""Changing MCP servers through the API, each change audited with its actor.

Servers registered through the API and tool pins live in Redis (``McpServers`` port),
the audit trail in Postgres, and there is no transaction spanning both. So each use
case makes the change first, through the port, and only once it has succeeded writes
the audit entry in a unit of work of its own:

- the change is refused or fails (unknown server or tool, a duplicate name, a server
  from the settings, Redis down): it raised before the audit, so there is no entry,
  as there is no change;
- the change succeeded but the audit write fails (Postgres down): the error reaches
  the caller (the request fails) although the change stays made; nothing is undone
  (an undo could fail too, and a tool call cannot be undone). Writing the entry first
  would instead record changes that never happened; a change with no entry is the
  rarer fault, and the failed request tells its caller to look.

No entry holds a server's environment, headers or arguments, nor a tool call's
arguments or result: they can carry credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chatsys.domain.access.model import AuditEntry
from chatsys.domain.llm.ports import ToolResult
from chatsys.domain.mcp.ports import McpServerInfo, McpServers, McpToolInfo, McpUnitOfWork
from chatsys.domain.shared.uow import Factory


async def _audit(uow: Factory[McpUnitOfWork], entry: AuditEntry) -> None:
    async with uow() as unit:
        await unit.audit.add(entry)
        await unit.commit()


class AddMcpServer:
    """Register a server (the port starts it at once); audited as ``mcp.server.add``."""

    def __init__(self, servers: McpServers, uow: Factory[McpUnitOfWork]) -> None:
        self._servers = servers
        self._uow = uow

    async def execute(self, definition: Mapping[str, Any], *, actor: str) -> McpServerInfo:
        info = await self._servers.add(definition)
        await _audit(
            self._uow,
            AuditEntry("mcp.server.add", actor, target=f"mcp_server:{info.name}",
                       details={"transport": info.transport, "state": info.state})
        )  # fmt: skip
        return info


class RemoveMcpServer:
    """Remove a server registered through the API; audited as ``mcp.server.remove``."""

    def __init__(self, servers: McpServers, uow: Factory[McpUnitOfWork]) -> None:
        self._servers = servers
        self._uow = uow

    async def execute(self, name: str, *, actor: str) -> None:
        await self._servers.remove(name)
        await _audit(self._uow, AuditEntry("mcp.server.remove", actor, target=f"mcp_server:{name}"))


class AcceptMcpTool:
    """Pin a tool's current definition (ends its quarantine); audited as
    ``mcp.tool.accept`` with the digest pinned."""

    def __init__(self, servers: McpServers, uow: Factory[McpUnitOfWork]) -> None:
        self._servers = servers
        self._uow = uow

    async def execute(self, name: str, tool: str, *, actor: str) -> McpToolInfo:
        info = await self._servers.accept(name, tool)
        await _audit(
            self._uow,
            AuditEntry("mcp.tool.accept", actor, target=f"mcp_tool:{name}/{tool}",
                       details={"digest": info.digest})
        )  # fmt: skip
        return info


class CallMcpTool:
    """Call a tool directly (debugging); audited as ``mcp.tool.call`` once it answered,
    a tool error included (``is_error``), with neither arguments nor result."""

    def __init__(self, servers: McpServers, uow: Factory[McpUnitOfWork]) -> None:
        self._servers = servers
        self._uow = uow

    async def execute(
        self,
        name: str,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        actor: str,
        workspace: str | None = None,
    ) -> ToolResult:
        result = await self._servers.call(name, tool, arguments, workspace=workspace)
        await _audit(
            self._uow,
            AuditEntry("mcp.tool.call", actor, target=f"mcp_tool:{name}/{tool}",
                       details={"workspace": workspace, "is_error": result.is_error})
        )  # fmt: skip
        return result
