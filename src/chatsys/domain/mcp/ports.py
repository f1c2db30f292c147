"""MCP servers as the API sees them: their state, their tools, and the admin port."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from chatsys.domain.access.ports import AuditLog
from chatsys.domain.llm.ports import ToolResult
from chatsys.domain.shared.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class McpServerInfo:
    name: str
    transport: str
    source: str  # settings, api, builtin
    state: str  # stopped, starting, ready, failed, stopping
    tools: int
    last_error: str | None = None
    restarts: int = 0
    pid: int | None = None
    quarantined: int = 0
    definition: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class McpToolInfo:
    server: str
    name: str
    qualified_name: str  # server__tool, as agents see it
    description: str
    input_schema: Mapping[str, Any]
    status: str  # active, quarantined
    digest: str
    policy: str = "auto"  # auto, ask, deny (from the server's settings)


class McpServers(Protocol):
    """Managing MCP servers (unknown server or tool: ``NotFound``)."""

    async def servers(self) -> Sequence[McpServerInfo]: ...

    async def add(self, definition: Mapping[str, Any]) -> McpServerInfo: ...

    async def remove(self, name: str) -> None: ...

    async def tools(self, name: str) -> Sequence[McpToolInfo]: ...

    async def accept(self, name: str, tool: str) -> McpToolInfo: ...

    async def call(
        self,
        name: str,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        workspace: str | None = None,
    ) -> ToolResult: ...


class McpUnitOfWork(UnitOfWork, Protocol):
    """Where changes to MCP servers are audited (their state itself is not in it)."""

    @property
    def audit(self) -> AuditLog: ...
