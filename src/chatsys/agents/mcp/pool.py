"""The MCP server pool: one ``ServerConnection`` (a pooled session, restarted when it
dies) per server of this process, by name.

Servers come from the settings and built in (the workspace), fixed for the life of
the process, and from the API: ``apply`` brings those in line with the definitions
kept in the shared store, replacing a server whose definition changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog
from mcp.server import Server

from chatsys.agents.mcp.config import McpDefaults, ServerConfig, parse_server
from chatsys.agents.mcp.connection import ServerConnection, ServerState
from chatsys.domain.shared.errors import NotFound

log: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(__name__)


class ServerPool:
    """The connections to this process' MCP servers; nothing starts until asked."""

    def __init__(
        self,
        servers: Sequence[ServerConfig],
        defaults: McpDefaults,
        *,
        builtins: Sequence[tuple[ServerConfig, Server[Any]]] = (),
    ) -> None:
        self.defaults = defaults
        self._builtins = {config.name: server for config, server in builtins}
        self._connections: dict[str, ServerConnection] = {}
        for config, _ in builtins:
            self._connections[config.name] = self._connect(config, "builtin")
        for config in servers:
            self._connections[config.name] = self._connect(config, "settings")

    def _connect(self, config: ServerConfig, source: str) -> ServerConnection:
        return ServerConnection(config, self.defaults, source=source, builtins=self._builtins)

    def __contains__(self, name: object) -> bool:
        return name in self._connections

    def get(self, name: str) -> ServerConnection | None:
        return self._connections.get(name)

    def require(self, name: str) -> ServerConnection:
        connection = self._connections.get(name)
        if connection is None:
            raise NotFound(f"no MCP server named '{name}'")
        return connection

    def all(self) -> list[ServerConnection]:
        return list(self._connections.values())

    def ready(self) -> list[str]:
        return [n for n, c in self._connections.items() if c.state is ServerState.READY]

    def start(self) -> None:
        """Start the servers that are not lazy (the others start when first used)."""
        for connection in self._connections.values():
            if not connection.config.lazy:
                connection.start()

    async def close(self) -> None:
        await asyncio.gather(
            *(c.stop() for c in self._connections.values()), return_exceptions=True
        )

    async def apply(
        self, stored: Mapping[str, Mapping[str, Any]], *, dropped: Callable[[str], None]
    ) -> None:
        """Make the API's servers those ``stored``: stop the removed and changed ones
        (``dropped`` is told each name), add the new ones (not started)."""
        wanted: dict[str, ServerConfig] = {}
        for name, definition in stored.items():
            try:
                wanted[name] = parse_server(definition)
            except Exception as exc:
                log.warning("chatsys.mcp.bad_stored_server", server=name, error=str(exc))
        stale = [
            c
            for c in self._connections.values()
            if c.source == "api" and (c.name not in wanted or wanted[c.name] != c.config)
        ]
        for connection in stale:
            del self._connections[connection.name]
            dropped(connection.name)
        await asyncio.gather(*(c.stop() for c in stale), return_exceptions=True)
        for name, config in wanted.items():
            if name not in self._connections:
                self._connections[name] = self._connect(config, "api")
