"""What the `chatsys` command needs beyond the servers: API keys straight into the
database (`chatsys keys create`, the local admin key of `chatsys dev`)."""

from __future__ import annotations

import asyncio

from chatsys.bootstrap.components import service_urls
from chatsys.domain.access.model import ApiKey, Role
from chatsys.domain.access.use_cases import Authenticate, CreateApiKey
from chatsys.infra.clock import SystemClock
from chatsys.infra.db.engine import create_engine, create_session_factory
from chatsys.infra.db.unit_of_work import SqlUnitOfWork
from chatsys.infra.settings import Settings


def local_admin_key(settings: Settings, database_url: str) -> str:
    """`chatsys dev`: the local admin key, created on first run and kept in the data dir
    (readable by its owner only); made again if it was revoked or the file is gone."""
    path = settings.data_dir / "admin.key"
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
    settings: Settings, *, name: str, role: Role, subject: str | None
) -> tuple[ApiKey, str]:
    """For `chatsys keys create` and `chatsys dev`: a key straight into the database."""
    database_url, _ = service_urls(settings)
    engine = create_engine(settings.database, database_url, role="cli")
    try:
        uow = SqlUnitOfWork(create_session_factory(engine))
        return await CreateApiKey(lambda: uow, SystemClock()).execute(
            name=name, role=role, subject=subject, actor="cli"
        )
    finally:
        await engine.dispose()
