"""Postgres or Redis out of reach: which errors say so, one warning per outage (never a
traceback per request or per job), and waiting for the server to come back.

``outage_of`` reads an exception and its causes: a Redis connection or timeout error
(``BusyLoadingError`` while a restarted Redis loads its append-only file is one, and so
is the ``WatchError`` redis-py raises when the connection drops inside a transaction);
for Postgres, a connection SQLAlchemy invalidated, an asyncpg connection error
(``ConnectionDoesNotExistError``, ``CannotConnectNowError``, an administrator shutdown,
``InterfaceError: connection is closed``),
a pool that gave no connection in time, or a socket error raised from the database
driver (a refused connect reaches us as a bare ``ConnectionRefusedError``).
A query error, a constraint violation or a deadlock is not an outage.

``OutageMonitor`` is what a process tells when it meets one: the first error of an
outage logs ``chatsys.outage.started`` (a warning, the error's type and message), then
a probe asks the server every ``probe_every`` seconds until it answers and logs
``chatsys.outage.ended`` with how long it lasted and how many errors it caused.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

import asyncpg
import redis.exceptions as redis_errors
import sqlalchemy.exc as sa_errors
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chatsys.infra.logging import get_logger

log = get_logger(__name__)

Dependency = Literal["database", "redis"]
DATABASE: Dependency = "database"
REDIS: Dependency = "redis"
Probe = Callable[[], Awaitable[object]]

RETRY_AFTER = 2  # seconds a client is told to wait while a dependency is out of reach

_PG_CONNECTION_ERRORS = (
    asyncpg.PostgresConnectionError,  # class 08: the connection is gone or refused
    asyncpg.CannotConnectNowError,  # starting up, shutting down, in recovery
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.ConnectionDoesNotExistError,
)
_DRIVER_MODULES = ("asyncpg", "sqlalchemy")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _raised_by_driver(exc: BaseException) -> bool:
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.startswith(_DRIVER_MODULES):
            return True
        tb = tb.tb_next
    return False


def _database_error(error: BaseException) -> bool:
    if isinstance(error, sa_errors.TimeoutError):  # no pooled connection in time
        return True
    if isinstance(error, sa_errors.DBAPIError):
        return bool(error.connection_invalidated)
    if isinstance(error, _PG_CONNECTION_ERRORS):
        return True
    if isinstance(error, asyncpg.InterfaceError):
        return "closed" in str(error)  # "connection is closed", not "another operation..."
    return isinstance(error, OSError) and _raised_by_driver(error)


def _redis_error(error: BaseException) -> bool:
    if isinstance(error, redis_errors.ConnectionError | redis_errors.TimeoutError):
        return True
    return isinstance(error, redis_errors.WatchError) and "ConnectionError" in str(error)


def outage_of(exc: BaseException) -> Dependency | None:
    """``"database"`` or ``"redis"`` when ``exc`` (or an error that caused it) means that
    server cannot be reached now; None for any other error."""
    for error in _chain(exc):
        if _redis_error(error):
            return REDIS
        if _database_error(error):
            return DATABASE
    return None


def _first_line(exc: BaseException) -> str:
    """The error's type and first line (SQLAlchemy appends the statement below it)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]


@dataclass(slots=True)
class _Outage:
    since: float
    errors: int = 1
    probe: asyncio.Task[None] | None = None
    back: asyncio.Event = field(default_factory=asyncio.Event)


class OutageMonitor:
    """One per process: records outages of its dependencies, logs each once, and knows
    when each is back (``probes``: a call that raises while the server is away)."""

    retry_after = RETRY_AFTER

    def __init__(self, probes: Mapping[Dependency, Probe], *, probe_every: float = 0.5) -> None:
        self._probes = dict(probes)
        self._probe_every = probe_every
        self._outages: dict[Dependency, _Outage] = {}

    @classmethod
    def of(cls, engine: AsyncEngine, redis: Redis) -> OutageMonitor:
        """The monitor of a process that uses this engine and this Redis client."""

        async def database() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        async def ping() -> None:
            await redis.ping()

        return cls({DATABASE: database, REDIS: ping})

    def down(self, dependency: Dependency) -> bool:
        return dependency in self._outages

    def report(self, exc: BaseException) -> Dependency | None:
        """Record ``exc`` if it is an outage (see ``outage_of``) and return which one."""
        dependency = outage_of(exc)
        if dependency is None:
            return None
        outage = self._outages.get(dependency)
        if outage is not None:
            outage.errors += 1
            return dependency
        outage = self._outages[dependency] = _Outage(time.monotonic())
        log.warning(
            "chatsys.outage.started",
            dependency=dependency,
            error=_first_line(exc),
        )
        if dependency in self._probes:
            outage.probe = asyncio.create_task(
                self._watch(dependency, outage), name=f"chatsys-outage-{dependency}"
            )
        return dependency

    async def wait_back(self, dependency: Dependency) -> None:
        """Return once ``dependency`` answers (at once when no outage is known)."""
        outage = self._outages.get(dependency)
        if outage is not None:
            await outage.back.wait()

    async def _watch(self, dependency: Dependency, outage: _Outage) -> None:
        probe = self._probes[dependency]
        while True:
            await asyncio.sleep(self._probe_every)
            try:
                await asyncio.wait_for(probe(), timeout=max(self._probe_every * 4, 2.0))
            except Exception:  # noqa: S112 (still away: ask again)
                continue
            break
        self._outages.pop(dependency, None)
        outage.back.set()
        log.info(
            "chatsys.outage.ended",
            dependency=dependency,
            lasted_s=round(time.monotonic() - outage.since, 2),
            errors=outage.errors,
        )

    async def close(self) -> None:
        for outage in list(self._outages.values()):
            if outage.probe is not None:
                outage.probe.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await outage.probe
            outage.back.set()
        self._outages.clear()
