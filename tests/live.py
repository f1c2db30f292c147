"""A live chatsys for a whole test module: its own database (cloned from the session's
migrated template), `chatsys worker` and `chatsys api` processes with API keys on, and an
admin key, as `chatsys dev` would have them (the e2e tests of the README's examples)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import redis
from pydantic import SecretStr

from chatsys.bootstrap.cli import create_key
from chatsys.domain.access.model import Role
from chatsys.infra.embedded.stack import Endpoints
from chatsys.infra.settings import DatabaseSettings, Environment, Settings
from tests.support import (
    chatsys,
    clean_env,
    free_port,
    plain_dsn,
    terminating,
    wait_ready,
    with_database,
)


async def _admin_sql(database_url: str, sql: str) -> None:
    conn = await asyncpg.connect(plain_dsn(database_url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def module_database(servers: Endpoints, template: str) -> Iterator[str]:
    """A migrated database for one module (the per-test ``database_url`` is too short-lived
    for processes shared by a module's tests)."""
    name = f"chatsys_m_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin_sql(servers.database_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield with_database(servers.database_url, name)
    finally:
        asyncio.run(
            _admin_sql(servers.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )


def admin_key(database_url: str) -> str:
    """A new admin key of the subject ``local``, as `chatsys dev` makes for itself."""
    settings = Settings(
        environment=Environment.TEST, database=DatabaseSettings(url=SecretStr(database_url))
    )
    made = create_key(
        settings, name="readme", role=Role.ADMIN, subject="local", database_url=database_url
    )
    _, key = asyncio.run(made)
    return key


@dataclass
class Live:
    database_url: str
    redis_url: str
    env: dict[str, str]  # what the processes were started with
    port: int
    key: str
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def http(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30)

    def api(self, port: int) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
        """Another `chatsys api` process of the same deployment, on ``port``."""
        env = {**self.env, "CHATSYS_API_PORT": str(port)}
        return terminating(chatsys("api", env=env, log=self.log))


@contextlib.contextmanager
def live_chatsys(servers: Endpoints, template: str, log: Path, **settings: str) -> Iterator[Live]:
    """A worker and an API process (keys on, rate limits off) on a database of their own;
    ``settings`` are more ``CHATSYS_*`` variables for both."""
    redis.Redis.from_url(servers.redis_url).flushdb()
    with module_database(servers, template) as database_url:
        port = free_port()
        env = clean_env(
            CHATSYS_DATABASE_URL=database_url,
            CHATSYS_REDIS_URL=servers.redis_url,
            CHATSYS_API_PORT=str(port),
            CHATSYS_AUTH_ENABLED="true",
            CHATSYS_WORKER_HEARTBEAT_INTERVAL="0.5",
            CHATSYS_LOG_FORMAT="json",
            **settings,
        )
        key = admin_key(database_url)
        with (
            terminating(chatsys("worker", env=env, log=log)),
            terminating(chatsys("api", env=env, log=log)) as api,
        ):
            wait_ready(f"http://127.0.0.1:{port}", 90, proc=api, log=log)
            yield Live(database_url, servers.redis_url, env, port, key, log)


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell running an example: no CHATSYS_* from the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSYS_")}
    env.update(extra)
    return env
