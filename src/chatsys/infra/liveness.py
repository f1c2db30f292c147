"""Is a worker process alive? A key per worker in Redis, kept by a thread of its own.

Each worker ``SET``s ``chatsys:worker:<id>`` with a ``ttl`` every ``interval`` seconds;
the key disappears ``ttl`` seconds after the last stamp (Redis' clock, not ours). The
sweeper (``chatsys.domain.tasks.recovery``) re-queues a running task early when its
worker's key is gone and its lease (the task heartbeat, Postgres' clock) is quiet too.

The stamp runs on a thread, not on the event loop: a step that keeps the loop busy
with CPU work (or a long GC pause) must not make a live worker look dead. Pure Python
code gives up the GIL every few milliseconds, so the thread keeps stamping; only the
death (or a stop) of the whole process ends the stamps. A loop that is stuck for good
while its process lives is caught by the lease backstop (``task_stale_after``).

``RedisWorkerLiveness.dead`` answers None (unknown) while Redis cannot be asked, for
``ttl`` seconds after it could not be, and while Redis itself has been up for less than
``ttl`` seconds: after an outage or a restart a missing key means nothing yet.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Collection

import redis
from redis.asyncio import Redis

from chatsys.infra.logging import get_logger
from chatsys.infra.outages import REDIS, OutageMonitor, outage_of
from chatsys.infra.redis import LIVENESS_PREFIX

log = get_logger(__name__)


def liveness_key(worker_id: str) -> str:
    return f"{LIVENESS_PREFIX}{worker_id}"


class LivenessStamp:
    """Keeps this worker's liveness key while the process lives (a daemon thread with
    its own synchronous Redis connection)."""

    def __init__(self, redis_url: str, worker_id: str, *, interval: float, ttl: float) -> None:
        if ttl <= interval:
            raise ValueError("the liveness ttl must be longer than its interval")
        self._key = liveness_key(worker_id)
        self._interval = interval
        self._ttl_ms = int(ttl * 1000)
        timeout = max(interval, 0.5)
        self._client = redis.Redis.from_url(
            redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chatsys-liveness", daemon=True)
        self._failing = False

    def _stamp(self) -> None:
        self._client.set(self._key, os.getpid(), px=self._ttl_ms)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._stamp()
            except Exception as exc:  # a Redis blip: the next stamp tries again
                if not self._failing:
                    self._failing = True
                    log.warning("chatsys.worker.liveness_failed", error=str(exc))
                continue
            if self._failing:
                self._failing = False
                log.info("chatsys.worker.liveness_back")

    async def start(self) -> None:
        await asyncio.to_thread(self._stamp)  # stamped before the first claim
        self._thread.start()

    def _finish(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self._interval + 2)
        try:
            self._client.delete(self._key)
        except redis.RedisError:
            pass  # it expires by itself
        finally:
            self._client.close()

    async def stop(self) -> None:
        await asyncio.to_thread(self._finish)


class RedisWorkerLiveness:
    """The sweeper's side: which of these workers have no liveness key?"""

    def __init__(self, client: Redis, *, ttl: float, outages: OutageMonitor | None = None):
        self._redis = client
        self._ttl = ttl
        self._outages = outages
        self._failed_at = -float("inf")

    async def dead(self, worker_ids: Collection[str]) -> set[str] | None:
        ids = list(worker_ids)
        if not ids:
            return set()
        if time.monotonic() - self._failed_at < self._ttl:
            return None  # Redis was away a moment ago: stamps may not be back yet
        if self._outages is not None and self._outages.down(REDIS):
            return None
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.info("server")
                for worker_id in ids:
                    pipe.exists(liveness_key(worker_id))
                info, *found = await pipe.execute()
        except Exception as exc:
            if outage_of(exc) is None:
                raise
            self._failed_at = time.monotonic()
            if self._outages is not None:
                self._outages.report(exc)
            return None
        if float(info.get("uptime_in_seconds", 0)) < self._ttl:
            return None  # a Redis just restarted has not heard from every worker yet
        return {worker_id for worker_id, exists in zip(ids, found, strict=True) if not exists}
