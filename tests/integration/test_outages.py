"""Which real errors are outages of Postgres or Redis, and that an outage is logged once."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import redis.asyncio as aioredis
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from chatsys.infra.outages import DATABASE, REDIS, OutageMonitor, outage_of
from tests.support import eventually, free_port, plain_dsn


def _nowhere(database_url: str) -> str:
    """The same URL, on a port where nothing listens."""
    url = make_url(database_url).set(host="127.0.0.1", port=free_port())
    return url.render_as_string(hide_password=False)


async def _error_of(engine_url: str, sql: str) -> BaseException:
    engine = create_async_engine(engine_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    except Exception as exc:
        return exc
    finally:
        await engine.dispose()
    raise AssertionError(f"{sql} did not fail")


async def test_a_refused_or_killed_connection_is_a_database_outage(database_url: str) -> None:
    closed = _nowhere(database_url)
    assert outage_of(await _error_of(closed, "SELECT 1")) == DATABASE

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            pid = await conn.scalar(text("SELECT pg_backend_pid()"))
            admin = await asyncpg.connect(plain_dsn(database_url))
            try:
                await admin.execute("SELECT pg_terminate_backend($1)", pid)
            finally:
                await admin.close()
            with pytest.raises(DBAPIError) as killed:
                await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    assert outage_of(killed.value) == DATABASE


async def test_query_errors_are_no_outage(database_url: str) -> None:
    assert outage_of(await _error_of(database_url, "SELECT * FROM no_such_table")) is None
    assert outage_of(await _error_of(database_url, "SELECT 1 / 0")) is None
    assert outage_of(ValueError("no")) is None


async def test_an_unreachable_redis_is_a_redis_outage_and_a_wrong_command_is_not(
    redis_url: str,
) -> None:
    gone = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    with pytest.raises(RedisConnectionError) as refused:
        await gone.ping()
    await gone.aclose()
    assert outage_of(refused.value) == REDIS

    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.set("chatsys:test:a-string", "x")
        with pytest.raises(ResponseError) as wrong:
            await client.lpush("chatsys:test:a-string", "y")  # WRONGTYPE
    finally:
        await client.aclose()
    assert outage_of(wrong.value) is None


async def test_an_outage_is_logged_once_and_its_end_once(database_url: str) -> None:
    closed = _nowhere(database_url)
    errors = [await _error_of(closed, "SELECT 1") for _ in range(3)]
    away = asyncio.Event()
    away.set()

    async def probe() -> None:
        if away.is_set():
            raise ConnectionRefusedError("still away")

    monitor = OutageMonitor({DATABASE: probe}, probe_every=0.05)
    with structlog.testing.capture_logs() as logs:
        assert [monitor.report(e) for e in errors] == [DATABASE] * 3
        assert monitor.report(ValueError("a bug")) is None
        assert monitor.down(DATABASE)
        waiting = asyncio.create_task(monitor.wait_back(DATABASE))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        away.clear()
        await asyncio.wait_for(waiting, 5)
        await eventually(lambda: not monitor.down(DATABASE), within=5)
    await monitor.close()
    outage_lines = [entry for entry in logs if entry["event"].startswith("chatsys.outage.")]
    assert [(e["event"], e["log_level"]) for e in outage_lines] == [
        ("chatsys.outage.started", "warning"),
        ("chatsys.outage.ended", "info"),
    ]
    assert outage_lines[0]["error"].startswith("ConnectionRefusedError")
    assert outage_lines[1]["errors"] == 3
