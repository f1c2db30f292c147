"""The embedded servers: real processes from the pip wheels, owned and cleaned up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis

from chatsys.infra.embedded.postgres import running_url
from chatsys.infra.embedded.server import EmbeddedServerError
from chatsys.infra.embedded.stack import EmbeddedStack, one_off_database
from tests.support import plain_dsn


def _write_and_read(database_url: str, value: str | None) -> str | None:
    async def go() -> str | None:
        conn = await asyncpg.connect(plain_dsn(database_url))
        try:
            await conn.execute("CREATE TABLE IF NOT EXISTS kept (v text)")
            if value is not None:
                await conn.execute("INSERT INTO kept VALUES ($1)", value)
            result: str | None = await conn.fetchval("SELECT v FROM kept LIMIT 1")
            return result
        finally:
            await conn.close()

    return asyncio.run(go())


def test_data_survives_a_restart_and_no_process_outlives_the_owner(tmp_path: Path) -> None:
    data = tmp_path / "data"
    stack = EmbeddedStack(data, database_url=None, redis_url=None)
    with stack as endpoints:
        pids = list(stack.pids())
        assert len(pids) == 2
        _write_and_read(endpoints.database_url, "hello")
        redis.Redis.from_url(endpoints.redis_url).set("kept", "yes")
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]

    with EmbeddedStack(data, database_url=None, redis_url=None) as endpoints:
        assert _write_and_read(endpoints.database_url, None) == "hello"
        assert redis.Redis.from_url(endpoints.redis_url).get("kept") == b"yes"


def test_a_second_owner_of_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    first = EmbeddedStack(tmp_path, database_url=None, redis_url=None)
    with first:
        second = EmbeddedStack(tmp_path, database_url=None, redis_url=None)
        with pytest.raises(
            EmbeddedServerError, match=r"in use by another chatsys process \(pid \d+\)"
        ):
            second.__enter__()
        assert list(first.pids())  # the first one is untouched
        assert all(psutil.pid_exists(p) for p in first.pids())


def test_configured_urls_start_nothing(tmp_path: Path) -> None:
    stack = EmbeddedStack(
        tmp_path, database_url="postgresql+asyncpg://x@db/x", redis_url="redis://cache:6379/0"
    )
    with stack as endpoints:
        assert endpoints.redis_url == "redis://cache:6379/0"
        assert list(stack.pids()) == []
    assert not (tmp_path / "postgres").exists()


def test_a_one_off_command_uses_the_running_owners_postgres_or_starts_its_own(
    tmp_path: Path,
) -> None:
    said: list[str] = []
    assert running_url(tmp_path) is None  # nothing there yet
    with one_off_database(tmp_path, database_url=None, progress=said.append) as alone:
        assert alone.started_here
        assert running_url(tmp_path) == alone.url  # read back from postmaster.pid
        _write_and_read(alone.url, "from the one-off")
    assert running_url(tmp_path) is None  # stopped again (its postmaster.pid is gone)

    owner = EmbeddedStack(tmp_path, database_url=None, redis_url=None, want_redis=False)
    with owner as endpoints:
        with one_off_database(tmp_path, database_url=None, progress=said.append) as shared:
            assert not shared.started_here
            assert shared.url == endpoints.database_url
            assert _write_and_read(shared.url, None) == "from the one-off"
        assert _write_and_read(endpoints.database_url, None) == "from the one-off"  # still up
    assert any("using the embedded Postgres of the chatsys process" in m for m in said)

    with one_off_database(tmp_path, database_url="postgresql+asyncpg://x@db/x") as given:
        assert (given.url, given.started_here) == ("postgresql+asyncpg://x@db/x", False)
