"""The agents' ``ToolInvoker``: the built-in tools plus the MCP servers' tools."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chatsys.agents.mcp.manager import McpManager
from chatsys.agents.profiles import tool_allowed
from chatsys.agents.tools import BuiltinTools
from chatsys.domain.llm.ports import ToolResult, ToolSpec
from chatsys.domain.planning.planner import parse_role

BUILTIN_PREFIX = "chatsys__"


class McpToolInvoker:
    """A tool reaches an agent only if its profile allows the name (code) and, for MCP
    tools, the server grants the role (settings); the model's choice never widens that."""

    def __init__(self, manager: McpManager, builtin: BuiltinTools | None = None) -> None:
        self._manager = manager
        self._builtin = builtin or BuiltinTools()

    async def tools_for(self, role: str, *, workspace: str | None = None) -> Sequence[ToolSpec]:
        parsed = parse_role(role)
        specs = list(await self._builtin.tools_for(role))
        for spec in await self._manager.specs_for(role):
            if tool_allowed(parsed, spec.name) and (workspace or not _needs_workspace(spec)):
                specs.append(spec)
        return specs

    async def call(
        self,
        role: str,
        name: str,
        arguments: Mapping[str, Any],
        *,
        workspace: str | None = None,
        approved: bool = False,
    ) -> ToolResult:
        if name.startswith(BUILTIN_PREFIX):
            return await self._builtin.call(role, name, arguments)
        if not tool_allowed(parse_role(role), name):
            return ToolResult(f"unknown tool '{name}'", is_error=True)
        return await self._manager.invoke(
            role, name, arguments, workspace=workspace, approved=approved
        )


def _needs_workspace(spec: ToolSpec) -> bool:
    return spec.name.startswith("workspace__")
