"""A live chatsys for the fuzz, started the way a user starts it: `chatsys dev` on a
fresh data dir (embedded Postgres and Redis unless URLs are given, migrations, the
API, a worker, the local admin key), with the fake OpenAI-compatible server of
tests/fakes as its model so that submitted tasks really run."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import redis

from chatsys.infra.embedded.process import spawn, stop_process
from tests.fakes.openai_compat import run_fake_openai
from tests.support import (
    clean_env,
    free_port,
    plain_dsn,
    processes_mentioning,
    wait_ready,
    with_database,
)

# High enough never to answer 429 to the fuzz (it sends thousands of requests a
# minute, signed and unsigned); the limiter stays in the path of every request.
_NO_THROTTLE = "1000000"


@dataclass(frozen=True, slots=True)
class Live:
    base_url: str
    admin_key: str
    log: Path


class Leftovers(AssertionError):
    """A process that was started for the fuzz outlived it."""


async def _admin_sql(url: str, sql: str) -> None:
    conn = await asyncpg.connect(plain_dsn(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def _database(server_url: str | None) -> Iterator[str | None]:
    """A database of the fuzz's own on a given server (dropped after), or None: the
    embedded Postgres that `chatsys dev` starts in the data dir."""
    if server_url is None:
        yield None
        return
    name = f"chatsys_fuzz_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin_sql(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(server_url, name)
    finally:
        asyncio.run(_admin_sql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def _redis(url: str | None) -> Iterator[str | None]:
    """A given Redis database is flushed before and after (as the tests do with it)."""
    if url is None:
        yield None
        return
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
        yield url
    finally:
        client.flushdb()
        client.close()


@contextmanager
def live_chatsys(work: Path, *, database_url: str | None, redis_url: str | None) -> Iterator[Live]:
    data_dir = work / "data"
    log = work / "chatsys.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (
        run_fake_openai() as llm,
        _database(database_url) as database,
        _redis(redis_url) as redis_server,
        log.open("ab") as out,
    ):
        env = clean_env(
            CHATSYS_DATA_DIR=str(data_dir),
            CHATSYS_API_PORT=str(port),
            CHATSYS_AUTH_ENABLED="true",
            CHATSYS_LIMITS_ENABLED="true",
            CHATSYS_LIMITS_ADMIN_REQUESTS=_NO_THROTTLE,
            CHATSYS_LIMITS_ANONYMOUS_REQUESTS=_NO_THROTTLE,
            CHATSYS_MODEL="openai/gpt-4o-mini",
            CHATSYS_LLM_API_BASE=llm.base_url,
            CHATSYS_LLM_API_KEY="sk-fuzz",
            CHATSYS_LOG_FORMAT="json",
        )
        if database is not None:
            env["CHATSYS_DATABASE_URL"] = database
        if redis_server is not None:
            env["CHATSYS_REDIS_URL"] = redis_server
        dev = spawn([sys.executable, "-m", "chatsys", "dev"], log=out, env=env)
        try:
            wait_ready(base, 180, proc=dev, log=log)
            key = (data_dir / "admin.key").read_text().strip()
            yield Live(base, key, log)
        finally:
            stop_process(dev, first=signal.SIGTERM, grace=60)
            left = processes_mentioning(str(data_dir))
            if left:
                raise Leftovers(f"processes left behind: {left}")
