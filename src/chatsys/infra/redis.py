"""The Redis client of a process (the same pool serves arq and chatsys' own keys)."""

from __future__ import annotations

from arq.connections import ArqRedis, RedisSettings

KEY_PREFIX = "chatsys:"
WORKERS_KEY = f"{KEY_PREFIX}workers"  # sorted set: worker id -> last heartbeat (unix time)
LIVENESS_PREFIX = f"{KEY_PREFIX}worker:"  # + worker id: a key with a TTL while it lives


def arq_redis_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout = 2
    settings.conn_retries = 3
    return settings


def redis_client(url: str, *, queue_name: str) -> ArqRedis:
    """An arq-capable client (a ``redis.asyncio.Redis`` that can also enqueue jobs). It
    does not connect yet (each command connects as it needs), so a process can start
    while Redis is away."""
    client: ArqRedis = ArqRedis.from_url(
        url, socket_connect_timeout=arq_redis_settings(url).conn_timeout
    )
    client.default_queue_name = queue_name
    return client
