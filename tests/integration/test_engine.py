"""Pooled connections that died while idle are replaced, not handed to a request."""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy import text

from chatsys.infra.db.engine import create_engine
from chatsys.infra.settings import DatabaseSettings
from tests.support import plain_dsn


async def test_a_connection_killed_while_idle_is_replaced(database_url: str) -> None:
    engine = create_engine(
        DatabaseSettings(pool_size=1, max_overflow=0, ping_after_idle=0.1),
        database_url,
        role="test",
    )
    try:
        async with engine.connect() as conn:
            first = await conn.scalar(text("SELECT pg_backend_pid()"))
        admin = await asyncpg.connect(plain_dsn(database_url))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await admin.close()
        await asyncio.sleep(0.2)  # idle longer than the threshold: it gets pinged
        async with engine.connect() as conn:
            second = await conn.scalar(text("SELECT pg_backend_pid()"))
        assert second != first
    finally:
        await engine.dispose()
