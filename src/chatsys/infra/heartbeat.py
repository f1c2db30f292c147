"""Worker liveness: each worker stamps its id in a Redis sorted set every few seconds.

``/readyz`` counts the workers stamped within the TTL. A worker that stops
cleanly removes its entry; one that dies simply ages out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid

from redis.asyncio import Redis

from chatsys.domain.health.readiness import ProbeResult
from chatsys.infra.logging import get_logger
from chatsys.infra.outages import OutageMonitor
from chatsys.infra.redis import WORKERS_KEY

log = get_logger(__name__)


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class WorkerHeartbeat:
    """Stamps every ``interval`` s; a stamp that fails is tried again at the next one (a
    Redis outage is logged once, by ``outages``)."""

    def __init__(
        self,
        redis: Redis,
        worker_id: str,
        *,
        interval: float,
        ttl: float,
        outages: OutageMonitor | None = None,
    ) -> None:
        self._redis = redis
        self._outages = outages
        self.worker_id = worker_id
        self._interval = interval
        self._ttl = ttl
        self._task: asyncio.Task[None] | None = None

    async def beat(self) -> None:
        now = time.time()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(WORKERS_KEY, {self.worker_id: now})
            pipe.zremrangebyscore(WORKERS_KEY, "-inf", now - self._ttl)
            await pipe.execute()

    async def _run(self) -> None:
        while True:
            try:
                await self.beat()
            except Exception as exc:  # Redis blips must not kill the worker
                if self._outages is None or self._outages.report(exc) is None:
                    log.warning("chatsys.worker.heartbeat_failed", error=str(exc))
            await asyncio.sleep(self._interval)

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.create_task(self._run(), name="chatsys-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self._redis.zrem(WORKERS_KEY, self.worker_id)


class WorkerHeartbeatProbe:
    """Ready when at least one worker has stamped within the TTL."""

    name = "worker"

    def __init__(self, redis: Redis, *, ttl: float) -> None:
        self._redis = redis
        self._ttl = ttl

    async def check(self) -> ProbeResult:
        now = time.time()
        live = await self._redis.zrangebyscore(
            WORKERS_KEY, now - self._ttl, "+inf", withscores=True
        )
        if not live:
            return ProbeResult.down(f"no worker heartbeat in the last {self._ttl:g}s")
        newest = max(score for _, score in live)
        return ProbeResult.ok(workers=len(live), last_heartbeat_age_s=round(now - newest, 2))
