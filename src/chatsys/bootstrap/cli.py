"""What the `chatsys` command needs beyond the servers: API keys straight into the
database (`chatsys keys create`, the local admin key of `chatsys dev`), and where
`chatsys mcp` finds the API and its key."""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from chatsys.bootstrap.components import service_urls
from chatsys.domain.access.model import ApiKey, Role
from chatsys.domain.access.use_cases import Authenticate, CreateApiKey
from chatsys.domain.tasks.model import Priority
from chatsys.infra.clock import SystemClock
from chatsys.infra.db import migrations
from chatsys.infra.db.engine import create_engine, create_session_factory
from chatsys.infra.db.unit_of_work import SqlUnitOfWork
from chatsys.infra.embedded.server import Progress
from chatsys.infra.embedded.stack import one_off_database
from chatsys.infra.settings import Settings


def admin_key_path(settings: Settings) -> Path:
    return settings.data_dir / "admin.key"


def local_admin_key(settings: Settings, database_url: str) -> str:
    """`chatsys dev`: the local admin key, created on first run and kept in the data dir
    (readable by its owner only); made again if it was revoked or the file is gone."""
    path = admin_key_path(settings)
    existing = path.read_text().strip() if path.exists() else ""

    async def ensure() -> str:
        engine = create_engine(settings.database, database_url, role="cli")
        try:
            uow = SqlUnitOfWork(create_session_factory(engine))
            if existing:
                check = Authenticate(lambda: uow, SystemClock(), cache_seconds=0)
                if await check.execute(existing) is not None:
                    return existing
            _, full = await CreateApiKey(
                lambda: SqlUnitOfWork(create_session_factory(engine)), SystemClock()
            ).execute(name="local admin (chatsys dev)", role=Role.ADMIN, subject="local",
                      actor="chatsys dev")  # fmt: skip
            return full
        finally:
            await engine.dispose()

    key = asyncio.run(ensure())
    if key != existing:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(key + "\n")
        path.chmod(0o600)
    return key


async def create_key(
    settings: Settings,
    *,
    name: str,
    role: Role,
    subject: str | None,
    default_priority: Priority = Priority.NORMAL,
    database_url: str | None = None,
) -> tuple[ApiKey, str]:
    """A key straight into the database (``database_url``, else the configured one)."""
    if database_url is None:
        database_url, _ = service_urls(settings)
    engine = create_engine(settings.database, database_url, role="cli")
    try:
        uow = SqlUnitOfWork(create_session_factory(engine))
        return await CreateApiKey(lambda: uow, SystemClock()).execute(
            name=name, role=role, subject=subject, actor="cli", default_priority=default_priority
        )
    finally:
        await engine.dispose()


def create_key_now(
    settings: Settings,
    *,
    name: str,
    role: Role,
    subject: str | None,
    progress: Progress,
    default_priority: Priority = Priority.NORMAL,
) -> tuple[ApiKey, str]:
    """`chatsys keys create`: the key in the configured database, else in the data dir's
    embedded one, whether `chatsys dev` runs (its Postgres) or not (Postgres started for
    this, migrated, and stopped)."""
    url = settings.database.url.get_secret_value() if settings.database.url else None
    with one_off_database(settings.data_dir, database_url=url, progress=progress) as database:
        if database.started_here:
            progress("applying database migrations")
            migrations.upgrade(database.url)
        made = create_key(
            settings,
            name=name,
            role=role,
            subject=subject,
            default_priority=default_priority,
            database_url=database.url,
        )
        return asyncio.run(made)


@dataclass(frozen=True, slots=True)
class BridgeTarget:
    api_url: str
    api_key: str | None
    unauthorized_hint: str  # added to a 401: where the key comes from


def _is_local(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bridge_target(settings: Settings, api_url: str | None = None) -> BridgeTarget:
    """`chatsys mcp`: the API it calls and the key it sends.

    The URL: ``api_url`` (``--api-url``), else ``CHATSYS_MCP_API_URL``, else this machine
    at ``CHATSYS_API_HOST``/``CHATSYS_API_PORT`` (where `chatsys dev` serves). The key:
    ``CHATSYS_MCP_API_KEY``, else, for an API on this machine only (a loopback host), the
    data dir's ``admin.key`` that `chatsys dev` writes.
    """
    url = api_url or settings.mcp.api_url
    if url is None:
        host = settings.api.host
        host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104 (a client)
        url = f"http://{f'[{host}]' if ':' in host else host}:{settings.api.port}"
    key_file = admin_key_path(settings)
    if settings.mcp.api_key is not None:
        key: str | None = settings.mcp.api_key.get_secret_value()
        hint = "the key is CHATSYS_MCP_API_KEY"
    elif _is_local(url):
        key = key_file.read_text().strip() or None if key_file.is_file() else None
        hint = (
            f"the key is the local admin key in {key_file}"
            if key
            else f"no key: set CHATSYS_MCP_API_KEY, or run `chatsys dev` once to write {key_file}"
        )
    else:
        key, hint = None, "no key: set CHATSYS_MCP_API_KEY"
    return BridgeTarget(url, key, hint)
