"""One MCP server: its session, kept open and reused, started lazily, watched, restarted.

Rules:
- the session lives in a task of its own (the SDK's transports must be entered and
  left in one task); callers only send requests on it;
- started on first use (or at start-up when the server is not lazy); a server
  that cannot start is ``failed`` with the error, and is tried again on a later
  use once its backoff (doubling, capped) has passed;
- a ready server is watched: its process (stdio) every ``_WATCH`` seconds, a
  ping every ``health_interval``; when it dies, the call under way fails at
  once with a clear error and the server is restarted after its backoff;
- the tool list is cached and listed again on ``notifications/tools/list_changed``;
- every call has a time limit (the SDK's ``call_tool`` waits forever by default);
- ``stop`` ends the session and stops the process; nothing outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import anyio
import mcp_types as types
import structlog
from mcp import ClientSession
from mcp.server import Server
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import CONNECTION_CLOSED

from chatsys.agents.mcp.config import McpDefaults, ServerConfig
from chatsys.agents.mcp.transports import (
    StartError,
    alive,
    find_instance,
    new_instance,
    open_transport,
)

log: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(__name__)

_WATCH = 0.5  # seconds between checks of a stdio server's process
_STABLE = 30.0  # a server up this long has its restart backoff reset
CLIENT_INFO = types.Implementation(name="chatsys", version="0.1.0")


class ServerState(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"
    STOPPING = "stopping"


class McpCallError(Exception):
    """A tool call could not be made or did not finish; the message says why."""


class _Died(Exception):
    pass


def describe(exc: BaseException) -> str:
    """A one-line reason, looking inside the task groups' exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, TimeoutError):
        text = "timed out"
    return text if len(text) <= 500 else text[:497] + "..."


class ServerConnection:
    def __init__(
        self,
        config: ServerConfig,
        defaults: McpDefaults,
        *,
        source: str,
        builtins: Mapping[str, Server[Any]] | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self._defaults = defaults
        self._builtins = builtins or {}
        self.state = ServerState.STOPPED
        self.last_error: str | None = None
        self.restarts = 0
        self.pid: int | None = None
        self.tools: list[types.Tool] = []
        self.tools_version = 0
        self._session: ClientSession | None = None
        self._runner: asyncio.Task[None] | None = None
        self._waiters: list[asyncio.Future[ClientSession]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._dead: str | None = None
        self._tools_stale = False
        self._failures = 0
        self._retry_at = 0.0

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def call_timeout(self) -> float:
        return self.config.timeout or self._defaults.call_timeout

    @property
    def max_result_chars(self) -> int:
        return self.config.max_result_chars or self._defaults.max_result_chars

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start the session in the background (no-op when running or stopping)."""
        if self._closing or (self._runner is not None and not self._runner.done()):
            return
        self.state = ServerState.STARTING
        self._dead = None
        self._runner = asyncio.create_task(self._run(), name=f"mcp:{self.name}")

    async def ready(self) -> ClientSession:
        """The open session, starting the server if needed (``McpCallError`` if it cannot)."""
        if self._session is not None and self.state is ServerState.READY:
            return self._session
        if self._closing:
            raise McpCallError(f"MCP server '{self.name}' is stopping")
        running = self._runner is not None and not self._runner.done()
        if not running and self.state is ServerState.FAILED and time.monotonic() < self._retry_at:
            raise McpCallError(f"MCP server '{self.name}' is not available: {self.last_error}")
        waiter: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.start()
        try:
            async with asyncio.timeout(self._defaults.start_timeout + 5):
                return await asyncio.shield(waiter)
        except TimeoutError:
            raise McpCallError(f"MCP server '{self.name}' did not start in time") from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    async def stop(self) -> None:
        self._closing = True
        self.state = ServerState.STOPPING
        self._wake.set()
        if self._runner is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._runner), timeout=15)
            except TimeoutError:  # the SDK bounds its own shutdown; this is a last resort
                self._runner.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._runner
        self.state = ServerState.STOPPED
        self._resolve(McpCallError(f"MCP server '{self.name}' was stopped"))

    def _stopping(self) -> bool:
        return self._closing  # a method, so type checkers do not assume it cannot change

    def _resolve(self, outcome: ClientSession | Exception) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if isinstance(outcome, Exception):
                waiter.set_exception(outcome)
            else:
                waiter.set_result(outcome)

    async def _run(self) -> None:
        while not self._closing:
            was_ready = False
            started = time.monotonic()
            self.state = ServerState.STARTING
            try:
                was_ready = await self._session_once()
            except Exception as exc:  # every failure is reported; the loop decides what next
                self.last_error = describe(exc)
            finally:
                self._session = None
                self.pid = None
            if self._stopping():
                break
            self.state = ServerState.FAILED
            if time.monotonic() - started > _STABLE:
                self._failures = 0
            self._failures += 1
            delay = min(
                self._defaults.restart_backoff * 2 ** (self._failures - 1),
                self._defaults.restart_backoff_max,
            )
            self._retry_at = time.monotonic() + delay
            log.warning(
                "chatsys.mcp.server_failed", server=self.name, error=self.last_error,
                was_ready=was_ready, retry_in_s=round(delay, 2),
            )  # fmt: skip
            if not was_ready:  # tried again on its next use, once the backoff has passed
                self._resolve(McpCallError(f"MCP server '{self.name}' failed: {self.last_error}"))
                return
            # It was working: restart it in the background (callers wait for it).
            await self._sleep(delay)
            self.restarts += 1

    async def _sleep(self, delay: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def _session_once(self) -> bool:
        """Open, initialise, serve until stopped or dead. Returns whether it got ready."""
        instance = new_instance()
        got_ready = False
        async with contextlib.AsyncExitStack() as stack:
            # The transports' task groups stay open past any timeout scope entered here,
            # so only the handshake is under the start timeout.
            read, write = await stack.enter_async_context(
                open_transport(self.config, instance, self._builtins)
            )
            session = await stack.enter_async_context(
                ClientSession(read, write, message_handler=self._on_message,
                              client_info=CLIENT_INFO)
            )  # fmt: skip
            with anyio.fail_after(self._defaults.start_timeout):
                await session.initialize()
                tools = await _list_all(session)
            if self.config.transport == "stdio":
                self.pid = find_instance(instance)
            self._set_tools(tools)
            self._session = session
            self._dead = None
            self.state = ServerState.READY
            self.last_error = None
            got_ready = True
            log.info("chatsys.mcp.server_ready", server=self.name, tools=len(tools), pid=self.pid)
            self._resolve(session)
            try:
                await self._serve(session)
            except _Died as died:
                self.last_error = str(died)
            finally:
                self._session = None
        return got_ready

    async def _serve(self, session: ClientSession) -> None:
        next_ping = time.monotonic() + self._defaults.health_interval
        while not self._closing:
            self._wake.clear()
            with anyio.move_on_after(_WATCH):
                await self._wake.wait()
            if self._stopping():
                return
            if self._dead is not None:
                raise _Died(self._dead)
            if self.pid is not None and not alive(self.pid):
                raise _Died("the server process exited")
            if self._tools_stale:
                self._tools_stale = False
                with anyio.fail_after(self._defaults.start_timeout):
                    self._set_tools(await _list_all(session))
            if time.monotonic() >= next_ping:
                try:
                    with anyio.fail_after(min(10.0, self._defaults.health_interval)):
                        await session.send_ping()
                except Exception as exc:
                    raise _Died(f"health check failed: {describe(exc)}") from exc
                next_ping = time.monotonic() + self._defaults.health_interval

    def _set_tools(self, tools: list[types.Tool]) -> None:
        self.tools = tools
        self.tools_version += 1

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self._tools_stale = True
            self._wake.set()

    def _mark_dead(self, reason: str) -> None:
        if self._dead is None:
            self._dead = reason
        if self.state is ServerState.READY:
            self.state = ServerState.FAILED
        self._wake.set()

    # -- use ---------------------------------------------------------------------

    async def refresh_tools(self) -> list[types.Tool]:
        session = await self.ready()
        if self._tools_stale:
            self._tools_stale = False
            async with asyncio.timeout(self._defaults.start_timeout):
                self._set_tools(await _list_all(session))
        return self.tools

    async def call(
        self, tool: str, arguments: Mapping[str, Any], meta: Mapping[str, Any] | None = None
    ) -> types.CallToolResult:
        session = await self.ready()
        timeout = self.call_timeout
        try:
            async with asyncio.timeout(timeout):
                return await session.call_tool(
                    tool,
                    dict(arguments),
                    meta=dict(meta) if meta else None,  # type: ignore[arg-type]
                )
        except TimeoutError:
            raise McpCallError(
                f"the MCP tool '{self.name}__{tool}' did not answer within {timeout:g} s"
            ) from None
        except MCPError as exc:
            if exc.error.code == CONNECTION_CLOSED:
                self._mark_dead("the connection closed during a call (the server stopped)")
                raise McpCallError(
                    f"the MCP server '{self.name}' stopped during the call to '{tool}' "
                    "(it is being restarted)"
                ) from None
            raise McpCallError(f"the MCP server '{self.name}' answered an error: {exc}") from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
            self._mark_dead(f"the connection broke: {describe(exc)}")
            raise McpCallError(
                f"the MCP server '{self.name}' connection broke during the call to '{tool}'"
            ) from None


async def _list_all(session: ClientSession) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    for _ in range(100):  # pages
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


__all__ = ["McpCallError", "ServerConnection", "ServerState", "StartError", "describe"]
