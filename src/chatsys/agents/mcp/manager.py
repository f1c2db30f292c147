"""The MCP manager: every server of this process, their tools, and who may use them.

Rules:
- servers come from the settings, from the API (kept in the shared store, so
  every process sees them within ``sync_interval``) and built in (the
  workspace); each has one pooled session (``ServerConnection``);
- agents see a server's tools as ``server__tool`` function tools when the
  server grants their role (``roles``), the tool matches the server's
  ``tools`` patterns and their profile allows the name (code);
- tool definitions are pinned: the first time a tool is seen, the hash of
  its description and input schema is stored; a tool whose hash differs from
  its pin is quarantined (not offered, not callable) until an admin accepts it;
- arguments are checked against the tool's input schema before the call; a
  mismatch is returned as an error result (the model can correct itself);
- results are text, cut at the server's size cap;
- each tool has a policy from its server's settings (``tool_policy``): ``deny``
  tools are not offered and refused when called, ``ask`` tools are offered with
  their policy and refused unless the call was approved (the agent asks first).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema
import structlog
from mcp.server import Server

from chatsys.agents.mcp.catalogue import (
    SEPARATOR,
    ToolCatalogue,
    ToolEntry,
    render,
    role_granted,
    tool_listed,
)
from chatsys.agents.mcp.config import McpDefaults, ServerConfig, parse_server, tool_policy
from chatsys.agents.mcp.connection import McpCallError, ServerConnection
from chatsys.agents.mcp.pool import ServerPool
from chatsys.agents.mcp.store import McpStore, MemoryMcpStore
from chatsys.agents.mcp.workspace import META_KEY
from chatsys.domain.approvals.model import ToolPolicy, denied_by_policy
from chatsys.domain.llm.ports import ToolResult, ToolSpec
from chatsys.domain.mcp.ports import McpServerInfo, McpToolInfo
from chatsys.domain.shared.errors import Conflict, NotFound, Unavailable

log: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(__name__)


class McpManager:
    """Implements the ``McpServers`` port, and serves tools to the agents' invoker."""

    def __init__(
        self,
        servers: Sequence[ServerConfig],
        defaults: McpDefaults | None = None,
        *,
        store: McpStore | None = None,
        builtins: Sequence[tuple[ServerConfig, Server[Any]]] = (),
    ) -> None:
        self.defaults = defaults or McpDefaults()
        self._store = store or MemoryMcpStore()
        self._servers = ServerPool(servers, self.defaults, builtins=builtins)
        self._catalogue = ToolCatalogue(self._store)
        self._version: int | None = None
        self._synced_at = -1e9
        self._store_away = False
        self._sync_lock = asyncio.Lock()
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        await self._sync(force=True)
        self._servers.start()

    async def close(self) -> None:
        self._closed = True
        await self._servers.close()

    async def _sync(self, *, force: bool = False) -> None:
        """Pick up servers and pins changed by other processes (through the store). A
        periodic sync that cannot read the store keeps what it knows; a forced one (a
        change is being made) raises."""
        if self._closed or (
            not force and time.monotonic() - self._synced_at < self.defaults.sync_interval
        ):
            return
        async with self._sync_lock:
            try:
                version = await self._store.version()
            except Exception as exc:
                if force or self._version is None:
                    raise
                # The store (Redis) is away: keep the servers known, look again later.
                self._synced_at = time.monotonic()
                if not self._store_away:
                    log.warning("chatsys.mcp.store_unreachable", error=str(exc))
                    self._store_away = True
                return
            self._store_away = False
            self._synced_at = time.monotonic()
            if version == self._version:
                return
            stored = await self._store.servers()
            self._catalogue.load_pins(await self._store.pins())
            self._version = version
            await self._servers.apply(stored, dropped=self._catalogue.forget)

    # -- the tools agents see ------------------------------------------------------

    async def _tools_of(self, connection: ServerConnection) -> dict[str, ToolEntry]:
        try:
            await connection.refresh_tools()
        except McpCallError as exc:
            raise Unavailable(str(exc)) from None
        return await self._catalogue.entries(connection)

    async def specs_for(self, role: str) -> list[ToolSpec]:
        """The MCP tools offered to ``role`` (servers it may use are started if needed)."""
        await self._sync()
        granted = [c for c in self._servers.all() if role_granted(c.config, role)]
        found = await asyncio.gather(*(self._tools_of(c) for c in granted), return_exceptions=True)
        specs: list[ToolSpec] = []
        for connection, entries in zip(granted, found, strict=True):
            if isinstance(entries, BaseException):
                log.warning("chatsys.mcp.tools_unavailable", server=connection.name,
                            error=str(entries))  # fmt: skip
                continue
            for entry in entries.values():
                policy = tool_policy(connection.config, entry.tool.name)
                if (
                    entry.info.status == "active"
                    and tool_listed(connection.config, entry.tool.name)
                    and policy is not ToolPolicy.DENY
                ):
                    specs.append(
                        ToolSpec(entry.info.qualified_name, entry.info.description,
                                 entry.info.input_schema, policy)
                    )  # fmt: skip
        return specs

    def _split(self, qualified: str) -> tuple[ServerConnection, str] | None:
        server, sep, _ = qualified.partition(SEPARATOR)
        connection = self._servers.get(server)
        if not sep or connection is None:
            return None
        tool = self._catalogue.tool_for(server, qualified)
        return None if tool is None else (connection, tool)

    async def invoke(
        self,
        role: str,
        qualified: str,
        arguments: Mapping[str, Any],
        *,
        workspace: str | None,
        approved: bool = False,
    ) -> ToolResult:
        """Call ``server__tool`` for an agent; every refusal is an error result."""
        found = self._split(qualified)
        if found is None:  # a server added elsewhere, or not listed yet in this process
            await self._sync(force=True)
            connection = self._servers.get(qualified.partition(SEPARATOR)[0])
            if connection is not None and role_granted(connection.config, role):
                try:
                    await self._tools_of(connection)
                except Unavailable as exc:
                    return ToolResult(str(exc), is_error=True)
            found = self._split(qualified)
        if found is None or not role_granted(found[0].config, role):
            return ToolResult(f"unknown tool '{qualified}'", is_error=True)
        connection, tool = found
        if not tool_listed(connection.config, tool):
            return ToolResult(f"unknown tool '{qualified}'", is_error=True)
        policy = tool_policy(connection.config, tool)
        if policy is ToolPolicy.DENY:
            return ToolResult(denied_by_policy(qualified), is_error=True)
        if policy is ToolPolicy.ASK and not approved:
            return ToolResult(f"the tool '{qualified}' needs an approval", is_error=True)
        return await self._call(connection, tool, arguments, workspace)

    async def _call(
        self,
        connection: ServerConnection,
        tool: str,
        arguments: Mapping[str, Any],
        workspace: str | None,
    ) -> ToolResult:
        entry = self._catalogue.cached(connection.name).get(tool)
        if entry is None:
            return ToolResult(f"unknown tool '{tool}' on MCP server '{connection.name}'", True)
        if entry.info.status != "active":
            return ToolResult(
                f"the tool '{entry.info.qualified_name}' changed since it was approved and is "
                "quarantined until an admin accepts it",
                is_error=True,
            )
        if entry.validator is not None:
            error = jsonschema.exceptions.best_match(entry.validator.iter_errors(dict(arguments)))
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "arguments"
                return ToolResult(
                    f"invalid arguments for '{entry.info.qualified_name}': {where}: "
                    f"{error.message}",
                    is_error=True,
                )
        meta = {META_KEY: workspace} if connection.source == "builtin" and workspace else None
        try:
            result = await connection.call(tool, arguments, meta)
        except McpCallError as exc:
            return ToolResult(str(exc), is_error=True)
        return ToolResult(render(result, connection.max_result_chars), bool(result.is_error))

    # -- the McpServers port (the API) ---------------------------------------------

    def _info(self, connection: ServerConnection) -> McpServerInfo:
        entries = self._catalogue.cached(connection.name)
        return McpServerInfo(
            name=connection.name,
            transport=str(connection.config.transport),
            source=connection.source,
            state=connection.state.value,
            tools=len(connection.tools),
            last_error=connection.last_error,
            restarts=connection.restarts,
            pid=connection.pid,
            quarantined=sum(1 for e in entries.values() if e.info.status != "active"),
            definition=connection.config.public(),
        )

    async def servers(self) -> Sequence[McpServerInfo]:
        await self._sync()
        return [self._info(c) for c in sorted(self._servers.all(), key=lambda c: c.name)]

    async def server(self, name: str) -> McpServerInfo:
        await self._sync()
        return self._info(self._servers.require(name))

    async def add(self, definition: Mapping[str, Any]) -> McpServerInfo:
        config = parse_server(definition)
        await self._sync(force=True)
        if config.name in self._servers:
            raise Conflict(f"an MCP server named '{config.name}' exists already")
        await self._store.put_server(config.name, config.model_dump(exclude_none=True))
        await self._sync(force=True)
        connection = self._servers.require(config.name)
        try:  # start it now, so a bad command shows as failed at once
            await connection.ready()
            await self._catalogue.entries(connection)
        except McpCallError:
            pass
        return self._info(connection)

    async def remove(self, name: str) -> None:
        await self._sync(force=True)
        connection = self._servers.require(name)
        if connection.source != "api":
            raise Conflict(
                f"the MCP server '{name}' comes from the {connection.source} configuration; "
                "remove it there"
            )
        await self._store.delete_server(name)
        await self._sync(force=True)

    async def tools(self, name: str) -> Sequence[McpToolInfo]:
        await self._sync()
        entries = await self._tools_of(self._servers.require(name))
        return [e.info for e in entries.values()]

    async def _entry(self, name: str, tool: str) -> ToolEntry:
        entries = await self._tools_of(self._servers.require(name))
        entry = entries.get(tool)
        if entry is None:
            raise NotFound(f"the MCP server '{name}' has no tool '{tool}'")
        return entry

    async def accept(self, name: str, tool: str) -> McpToolInfo:
        await self._sync(force=True)
        entry = await self._entry(name, tool)
        await self._store.set_pin(f"{name}/{tool}", entry.info.digest)
        await self._sync(force=True)
        return (await self._catalogue.entries(self._servers.require(name)))[tool].info

    async def call(
        self,
        name: str,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        workspace: str | None = None,
    ) -> ToolResult:
        await self._sync()
        await self._entry(name, tool)
        return await self._call(self._servers.require(name), tool, arguments, workspace)

    def connection(self, name: str) -> ServerConnection:
        """For tests and diagnostics."""
        return self._servers.require(name)

    def ready_servers(self) -> list[str]:
        return self._servers.ready()
