"""The composition root: the one place that knows every concrete adapter.

It reads settings, opens the process' resources (engine, Redis), builds the
domain's use cases on top of them and hands them to the API or the worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from arq.connections import ArqRedis
from arq.worker import Worker, func
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chatsys import __version__
from chatsys.api.app import create_app
from chatsys.api.services import ApiServices
from chatsys.domain.conversations import GetConversation, ListConversations, StartConversation
from chatsys.domain.health import CheckReadiness
from chatsys.infra import jobs
from chatsys.infra.db.engine import create_engine, create_session_factory
from chatsys.infra.db.migrations import head_revision
from chatsys.infra.db.repositories import SqlUnitOfWork
from chatsys.infra.heartbeat import WorkerHeartbeat, WorkerHeartbeatProbe, new_worker_id
from chatsys.infra.logging import configure_logging, get_logger
from chatsys.infra.probes import PostgresProbe, RedisProbe
from chatsys.infra.redis import arq_redis_settings, create_redis
from chatsys.infra.settings import Settings

log = get_logger(__name__)


class ConfigurationError(RuntimeError):
    """The settings cannot work; the message says what to change."""


def load_settings() -> Settings:
    settings = Settings()
    if settings.is_production and (problems := settings.problems_for_production()):
        raise ConfigurationError("refusing to start in production:\n  " + "\n  ".join(problems))
    return settings


def service_urls(settings: Settings) -> tuple[str, str]:
    """The database and Redis URLs a server process needs.

    Starting embedded servers is `chatsys dev`'s job, not a server process'.
    """
    missing = [
        name
        for name, value in (
            ("CHATSYS_DATABASE_URL", settings.database.url),
            ("CHATSYS_REDIS_URL", settings.redis.url),
        )
        if value is None
    ]
    if missing:
        raise ConfigurationError(
            f"{' and '.join(missing)} not set. `chatsys dev` starts embedded servers and sets "
            "them for its API and worker; to run this process alone, point it at running servers."
        )
    assert settings.database.url is not None
    assert settings.redis.url is not None
    return settings.database.url.get_secret_value(), settings.redis.url.get_secret_value()


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(slots=True)
class Resources:
    """What one process opens at start-up and closes at shutdown."""

    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    redis: ArqRedis

    @classmethod
    async def open(cls, settings: Settings, *, role: str) -> Resources:
        database_url, redis_url = service_urls(settings)
        engine = create_engine(settings.database, database_url, role=role)
        try:
            redis = await create_redis(redis_url, queue_name=settings.worker.queue_name)
        except BaseException:
            await engine.dispose()
            raise
        return cls(settings, engine, create_session_factory(engine), redis)

    async def close(self) -> None:
        try:
            await self.redis.aclose()
        finally:
            await self.engine.dispose()

    def unit_of_work(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.session_factory)


def llm_info(settings: Settings) -> dict[str, Any]:
    if settings.llm.model is None:
        return {
            "mode": "offline",
            "model": None,
            "note": "no CHATSYS_MODEL configured: answers come from the built-in offline model",
        }
    return {"mode": "provider", "model": settings.llm.model}


def api_services(resources: Resources) -> ApiServices:
    settings = resources.settings
    clock = SystemClock()
    readiness = CheckReadiness(
        [
            PostgresProbe(resources.engine, expected_revision=head_revision()),
            RedisProbe(resources.redis),
            WorkerHeartbeatProbe(resources.redis, ttl=settings.worker.heartbeat_ttl),
        ]
    )
    return ApiServices(
        readiness=readiness,
        llm=llm_info(settings),
        start_conversation=StartConversation(resources.unit_of_work, clock),
        get_conversation=GetConversation(resources.unit_of_work),
        list_conversations=ListConversations(resources.unit_of_work),
    )


def build_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app. Resources are opened in its lifespan, so building it is cheap."""
    settings = settings or load_settings()
    configure_logging(settings)

    @contextlib.asynccontextmanager
    async def services() -> AsyncIterator[ApiServices]:
        resources = await Resources.open(settings, role="api")
        try:
            yield api_services(resources)
        finally:
            await resources.close()

    return create_app(services, version=__version__)


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory chatsys.bootstrap:app_factory``."""
    return build_app()


def build_worker(settings: Settings | None = None, *, burst: bool = False) -> Worker:
    """The arq worker; its start-up hook is the worker's composition root."""
    settings = settings or load_settings()
    configure_logging(settings)
    _, redis_url = service_urls(settings)
    worker_id = new_worker_id()

    async def on_startup(ctx: dict[str, Any]) -> None:
        resources = await Resources.open(settings, role="worker")
        heartbeat = WorkerHeartbeat(
            resources.redis,
            worker_id,
            interval=settings.worker.heartbeat_interval,
            ttl=settings.worker.heartbeat_ttl,
        )
        await heartbeat.start()
        ctx.update(
            resources=resources,
            engine=resources.engine,
            heartbeat=heartbeat,
            worker_id=worker_id,
        )
        log.info("chatsys.worker.started", worker_id=worker_id, queue=settings.worker.queue_name)

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        heartbeat: WorkerHeartbeat | None = ctx.get("heartbeat")
        resources: Resources | None = ctx.get("resources")
        if heartbeat is not None:
            await heartbeat.stop()
        if resources is not None:
            await resources.close()
        log.info("chatsys.worker.stopped", worker_id=worker_id)

    return Worker(
        functions=[func(jobs.ping, name="chatsys.ping", timeout=30, max_tries=1)],
        queue_name=settings.worker.queue_name,
        redis_settings=arq_redis_settings(redis_url),
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        max_jobs=settings.worker.max_jobs,
        job_timeout=settings.worker.job_timeout,
        burst=burst,
        handle_signals=not burst,
        health_check_interval=max(settings.worker.heartbeat_interval, 1.0),
    )
