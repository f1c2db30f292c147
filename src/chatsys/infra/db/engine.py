"""The async engine and session factory: built at start-up, disposed at shutdown."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from chatsys.infra.settings import DatabaseSettings


def create_engine(settings: DatabaseSettings, url: str, *, role: str) -> AsyncEngine:
    """One engine per process; ``role`` names the process in ``pg_stat_activity``."""
    app_name = f"chatsys-{role}-{socket.gethostname()}-{os.getpid()}"[:63]
    engine = create_async_engine(
        url,
        pool_pre_ping=False,  # replaced by the idle-only ping below
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout,
        echo=settings.echo,
        hide_parameters=True,  # bound values are user input: never in an error or a log
        connect_args={"server_settings": {"application_name": app_name}},
    )
    _ping_when_idle(engine, settings.ping_after_idle)
    return engine


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Pre-ping a pooled connection only when it sat idle for ``idle_seconds``.

    ``pool_pre_ping`` pings on every checkout: a round trip per transaction that
    cost ~20% of ``POST /v1/tasks`` throughput (bench/ submit). A connection
    reused within seconds is alive; one that idled may have been dropped (server
    restart, idle timeout, failover) and is pinged, and replaced if dead.
    """
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool retries with a fresh connection
            raise DisconnectionError(f"pooled connection is dead: {exc}") from exc


def create_session_factory(
    engine: AsyncEngine, *, autocommit: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine``. ``autocommit``: for units of work of one statement, which
    is its own transaction: no BEGIN and COMMIT round trips around it."""
    bind = engine.execution_options(isolation_level="AUTOCOMMIT") if autocommit else engine
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False)
