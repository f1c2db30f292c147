"""Real Postgres and Redis for every test that asks for them.

Servers: embedded (started once per session in a temporary folder), or the ones
named by ``CHATSYS_TEST_DATABASE_URL`` / ``CHATSYS_TEST_REDIS_URL``. Isolation:
each test gets its own database, cloned from a template migrated once with
Alembic, and a flushed Redis database.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from arq.worker import Worker
from fastapi import FastAPI
from pydantic import SecretStr

from chatsys.bootstrap import build_app, build_worker
from chatsys.infra.db import migrations
from chatsys.infra.embedded.stack import EmbeddedStack, Endpoints
from chatsys.infra.settings import (
    AuthSettings,
    DatabaseSettings,
    Environment,
    LimitSettings,
    RedisSettings,
    Settings,
    WorkerSettings,
)
from tests.support import plain_dsn, stop_worker, with_database

_OWN_BASETEMP = pytest.StashKey[Path]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """As root, give this session a temporary root of its own.

    As root, embedded Postgres runs as an unprivileged account that must be able to
    reach its data directory under ``tmp_path``; by default that is under the shared
    ``/tmp/pytest-of-root``, which every pytest session starting on the machine resets
    to mode 0700, so a second session (two test runs at once) took the first one's
    Postgres away in the middle of its run ("could not open pg_control: Permission
    denied"). A session's own ``--basetemp`` under ``/tmp`` is never reset by another.
    It is removed at the end unless ``CHATSYS_KEEP_TEST_TMP`` is set."""
    if os.geteuid() != 0 or config.option.basetemp or hasattr(config, "workerinput"):
        return
    config.option.basetemp = tempfile.mkdtemp(prefix="chatsys-pytest-")
    config.stash[_OWN_BASETEMP] = Path(config.option.basetemp)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """``tests/chaos`` runs only when named (``make chaos``; `.ci/run` has its own stage),
    so that the README's ``make test`` does not run it a second time."""
    chaos = Path(__file__).parent / "chaos"
    if collection_path != chaos:
        return None
    named = (Path(arg.split("::")[0]).resolve() for arg in config.args)
    return None if any(path.is_relative_to(chaos) for path in named) else True


def pytest_unconfigure(config: pytest.Config) -> None:
    own = config.stash.get(_OWN_BASETEMP, None)
    if own is not None and not os.environ.get("CHATSYS_KEEP_TEST_TMP"):
        shutil.rmtree(own, ignore_errors=True)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    stack = EmbeddedStack(
        tmp_path_factory.mktemp("servers"),
        database_url=os.environ.get("CHATSYS_TEST_DATABASE_URL") or None,
        redis_url=os.environ.get("CHATSYS_TEST_REDIS_URL") or None,
    )
    with stack as endpoints:
        yield endpoints


async def _admin_sql(servers: Endpoints, sql: str) -> None:
    conn = await asyncpg.connect(plain_dsn(servers.database_url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def _scratch_database(servers: Endpoints, template: str | None) -> AsyncIterator[str]:
    name = f"chatsys_t_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    await _admin_sql(servers, f'CREATE DATABASE "{name}"{clause}')
    try:
        yield with_database(servers.database_url, name)
    finally:
        await _admin_sql(servers, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def template_database(servers: Endpoints) -> Iterator[str]:
    """A database migrated to head once per session; tests clone it."""
    name = f"chatsys_tpl_{uuid.uuid4().hex[:10]}"

    asyncio.run(_admin_sql(servers, f'CREATE DATABASE "{name}"'))
    try:
        migrations.upgrade(with_database(servers.database_url, name))
        yield name
    finally:
        asyncio.run(_admin_sql(servers, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def empty_database_url(servers: Endpoints) -> AsyncIterator[str]:
    """A brand-new database with no schema at all."""
    async with _scratch_database(servers, None) as url:
        yield url


@pytest.fixture
async def database_url(servers: Endpoints, template_database: str) -> AsyncIterator[str]:
    """A migrated database of this test's own."""
    async with _scratch_database(servers, template_database) as url:
        yield url


@pytest.fixture
async def redis_url(servers: Endpoints) -> str:
    client = aioredis.Redis.from_url(servers.redis_url)
    await client.flushdb()
    await client.aclose()
    return servers.redis_url


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment=Environment.TEST,
        data_dir=tmp_path / "data",
        database=DatabaseSettings(url=SecretStr(database_url), pool_size=5),
        redis=RedisSettings(url=SecretStr(redis_url)),
        worker=WorkerSettings(heartbeat_interval=0.2, heartbeat_ttl=3.0),
        # Off unless a test is about them (tests/integration/test_access.py turns them on).
        auth=AuthSettings(enabled=False),
        limits=LimitSettings(enabled=False),
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = build_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[Worker]:
    """A real arq worker, built by the composition root, consuming jobs in this loop."""
    running = build_worker(settings)
    running._handle_signals = False
    job = asyncio.create_task(running.async_run())
    yield running
    await stop_worker(running, job)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://chatsys.test") as c:
        yield c
