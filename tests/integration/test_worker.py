"""The arq worker built by the composition root consumes real jobs from real Redis."""

from __future__ import annotations

import redis.asyncio as aioredis
from arq.connections import create_pool

from chatsys.bootstrap import build_worker
from chatsys.infra.redis import WORKERS_KEY, arq_redis_settings
from chatsys.infra.settings import Settings


async def test_a_queued_ping_is_run_by_a_worker_that_reaches_postgres(settings: Settings) -> None:
    assert settings.redis.url is not None
    url = settings.redis.url.get_secret_value()
    pool = await create_pool(arq_redis_settings(url), default_queue_name=settings.worker.queue_name)
    try:
        job = await pool.enqueue_job("chatsys.ping")
        assert job is not None
        worker = build_worker(settings, burst=True)
        await worker.async_run()
        result = await job.result(timeout=10)
        await worker.close()
    finally:
        await pool.aclose()
    assert result["database"] == "ok"
    assert result["worker_id"]


async def test_a_stopped_worker_removes_its_heartbeat(settings: Settings) -> None:
    assert settings.redis.url is not None
    client = aioredis.Redis.from_url(settings.redis.url.get_secret_value())
    worker = build_worker(settings, burst=True)
    try:
        await worker.async_run()
        await worker.close()
        assert await client.zcard(WORKERS_KEY) == 0
    finally:
        await client.aclose()
