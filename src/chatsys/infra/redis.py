"""The Redis client of a process (the same pool serves arq and chatsys' own keys)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from arq.connections import ArqRedis, RedisSettings
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import Job, serialize_job
from arq.utils import timestamp_ms, to_ms, to_unix_ms

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


# Put a job in the way arq's ``enqueue_job`` does (same keys, same serialised job, same
# answer when a job of that id or its result exists), and wake the queue's idle workers,
# in one round trip instead of four (WATCH, EXISTS, MULTI/EXEC, PUBLISH): bench/ submit.
_ENQUEUE = """
if redis.call('exists', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('psetex', KEYS[1], ARGV[2], ARGV[1])
redis.call('zadd', KEYS[3], ARGV[3], ARGV[4])
redis.call('publish', ARGV[5], '')
return 1
"""


class WakingArqRedis(ArqRedis):
    """arq's client whose ``enqueue_job`` also tells the queue's idle workers, on
    ``wake_channel(queue)``, that a job is in (``SupervisedWorker`` waits on it instead
    of polling), in the same round trip. A job put in by another client is found by the
    workers' idle poll."""

    _enqueue_script: Any = None  # registered on first use (EVALSHA, EVAL when unknown)

    async def enqueue_job(
        self,
        function: str,
        *args: Any,
        _job_id: str | None = None,
        _queue_name: str | None = None,
        _defer_until: datetime | None = None,
        _defer_by: float | timedelta | None = None,
        _expires: float | timedelta | None = None,
        _job_try: int | None = None,
        **kwargs: Any,
    ) -> Job | None:
        """arq's ``enqueue_job``: None when a job of that id (or its result) exists."""
        if _defer_until is not None and _defer_by is not None:
            raise RuntimeError("use either 'defer_until' or 'defer_by' or neither, not both")
        queue = _queue_name or self.default_queue_name
        job_id = _job_id or uuid4().hex
        enqueued = timestamp_ms()
        if _defer_until is not None:
            score = to_unix_ms(_defer_until)
        else:
            score = enqueued + (to_ms(_defer_by) or 0)
        expires = to_ms(_expires) or score - enqueued + self.expires_extra_ms
        job = serialize_job(function, args, kwargs, _job_try, enqueued,
                            serializer=self.job_serializer)  # fmt: skip
        if self._enqueue_script is None:
            self._enqueue_script = self.register_script(_ENQUEUE)
        keys = [job_key_prefix + job_id, result_key_prefix + job_id, queue]
        added = await self._enqueue_script(
            keys=keys, args=[job, expires, score, job_id, wake_channel(queue)]
        )
        if not added:  # a job of that id is queued already (no news)
            return None
        return Job(job_id, redis=self, _queue_name=queue, _deserializer=self.job_deserializer)


def redis_client(url: str, *, queue_name: str) -> ArqRedis:
    """An arq-capable client (a ``redis.asyncio.Redis`` that can also enqueue jobs, and
    wakes the queue's workers when it does). It does not connect yet (each command
    connects as it needs), so a process can start while Redis is away."""
    client: ArqRedis = WakingArqRedis.from_url(
        url, socket_connect_timeout=arq_redis_settings(url).conn_timeout
    )
    client.default_queue_name = queue_name
    return client
