"""The Redis client of a process (the same pool serves arq and chatsys' own keys)."""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis, RedisSettings
from arq.jobs import Job

KEY_PREFIX = "chatsys:"
WORKERS_KEY = f"{KEY_PREFIX}workers"  # sorted set: worker id -> last heartbeat (unix time)
LIVENESS_PREFIX = f"{KEY_PREFIX}worker:"  # + worker id: a key with a TTL while it lives
WAKE_PREFIX = f"{KEY_PREFIX}wake:"  # + queue name: pub/sub channel, "a job is in this queue"


def wake_channel(queue_name: str) -> str:
    return f"{WAKE_PREFIX}{queue_name}"


def arq_redis_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout = 2
    settings.conn_retries = 3
    return settings


class WakingArqRedis(ArqRedis):
    """arq's client whose ``enqueue_job`` also tells the queue's idle workers, on
    ``wake_channel(queue)``, that a job is in (``SupervisedWorker`` waits on it instead
    of polling). A job put in by another client is found by the workers' idle poll."""

    async def enqueue_job(self, function: str, *args: Any, **kwargs: Any) -> Job | None:
        job = await super().enqueue_job(function, *args, **kwargs)
        if job is not None:  # None: a job of that id is queued already (no news)
            queue = kwargs.get("_queue_name") or self.default_queue_name
            await self.publish(wake_channel(queue), b"")
        return job


def redis_client(url: str, *, queue_name: str) -> ArqRedis:
    """An arq-capable client (a ``redis.asyncio.Redis`` that can also enqueue jobs, and
    wakes the queue's workers when it does). It does not connect yet (each command
    connects as it needs), so a process can start while Redis is away."""
    client: ArqRedis = WakingArqRedis.from_url(
        url, socket_connect_timeout=arq_redis_settings(url).conn_timeout
    )
    client.default_queue_name = queue_name
    return client
