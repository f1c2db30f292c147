"""The async engine and session factory: built at start-up, disposed at shutdown."""

from __future__ import annotations

import os
import socket

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
    return create_async_engine(
        url,
        pool_pre_ping=True,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout,
        echo=settings.echo,
        connect_args={"server_settings": {"application_name": app_name}},
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
