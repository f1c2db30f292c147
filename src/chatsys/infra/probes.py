"""Health probes of the infrastructure the service needs."""

from __future__ import annotations

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chatsys.domain.health.readiness import ProbeResult


class PostgresProbe:
    """Ready when a query answers and the schema is at the migration head."""

    name = "postgres"

    def __init__(self, engine: AsyncEngine, *, expected_revision: str) -> None:
        self._engine = engine
        self._expected = expected_revision

    async def check(self) -> ProbeResult:
        async with self._engine.connect() as conn:
            revision = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        if revision != self._expected:
            return ProbeResult.down(
                f"schema is at revision {revision}, expected {self._expected}: "
                "run `chatsys migrate`",
                revision=revision,
            )
        return ProbeResult.ok(revision=revision)


class RedisProbe:
    name = "redis"

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def check(self) -> ProbeResult:
        await self._redis.ping()
        return ProbeResult.ok()
