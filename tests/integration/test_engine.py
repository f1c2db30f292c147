"""Pooled connections that died while idle are replaced, not handed to a request."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

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


async def test_a_failing_statement_never_shows_its_bound_values(database_url: str) -> None:
    """A statement's parameters are what users sent (task input, names): the error of a
    failing statement, which reaches the log, must not list them (``hide_parameters``).
    (The database's own message may still quote a value it refused; not this case.)"""
    engine = create_engine(DatabaseSettings(), database_url, role="test")
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as failed:
                await conn.execute(text("SELECT 1 / 0 WHERE :v <> ''"), {"v": "secret-input-42"})
        assert "secret-input-42" not in str(failed.value)
        assert "hidden due to hide_parameters" in str(failed.value)
    finally:
        await engine.dispose()


async def test_single_statement_sessions_run_each_statement_as_its_own_transaction(
    database_url: str,
) -> None:
    """The journal writes events alone through these (one statement each): no BEGIN and
    COMMIT round trips. A pooled connection they used is a transactional one again for
    the next session of the usual kind."""
    from chatsys.infra.db.engine import create_session_factory

    engine = create_engine(DatabaseSettings(pool_size=1, max_overflow=0), database_url, role="test")
    try:
        single = create_session_factory(engine, autocommit=True)
        usual = create_session_factory(engine)
        xid = text("SELECT txid_current()")
        async with single() as session:
            assert await session.scalar(xid) != await session.scalar(xid)
            await session.commit()
        async with usual() as session:  # the same (only) pooled connection
            assert await session.scalar(xid) == await session.scalar(xid)
            await session.commit()
    finally:
        await engine.dispose()
