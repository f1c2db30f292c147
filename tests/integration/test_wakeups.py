"""An idle worker waits on its queue's wake-up channel, not on a tight poll: a job
enqueued through chatsys' client starts at once however rarely the worker polls, a
deferred one when it falls due, and one put in by a plain arq client (no wake-up)
within the idle poll."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis.asyncio as aioredis
from arq.connections import ArqRedis, create_pool

from chatsys.bootstrap import build_worker
from chatsys.infra.redis import WORKERS_KEY, arq_redis_settings, redis_client
from chatsys.infra.settings import Settings, WorkerSettings
from tests.support import eventually, stop_worker

RARE = 30.0  # the idle poll of the worker under test: far longer than any wait below


def _with_idle_poll(settings: Settings, idle_poll: float) -> Settings:
    # arq's health check interval (the heartbeat interval here) caps the idle wait.
    worker = WorkerSettings(heartbeat_interval=RARE, heartbeat_ttl=3 * RARE, idle_poll=idle_poll)
    return settings.model_copy(update={"worker": worker})


async def _idle_worker(settings: Settings) -> AsyncIterator[None]:
    assert settings.redis.url is not None
    watcher = aioredis.Redis.from_url(settings.redis.url.get_secret_value())
    worker = build_worker(settings, queues=["tasks"])
    running = asyncio.create_task(worker.async_run())
    try:
        await eventually(lambda: watcher.zcard(WORKERS_KEY), within=60)
        await asyncio.sleep(0.5)  # past its first empty polls: waiting now
        yield
    finally:
        await stop_worker(worker, running)
        await watcher.aclose()


@pytest.fixture
async def rarely_polling(settings: Settings) -> AsyncIterator[Settings]:
    settings = _with_idle_poll(settings, RARE)
    async for _ in _idle_worker(settings):
        yield settings


@pytest.fixture
async def polling_every_second(settings: Settings) -> AsyncIterator[Settings]:
    settings = _with_idle_poll(settings, 1.0)
    async for _ in _idle_worker(settings):
        yield settings


def _client(settings: Settings) -> ArqRedis:
    assert settings.redis.url is not None
    return redis_client(settings.redis.url.get_secret_value(), queue_name="chatsys:queue")


async def _ping(client: ArqRedis, **options: object) -> float:
    """Seconds from the enqueue of a ping to its result."""
    started = time.monotonic()
    job = await client.enqueue_job("chatsys.ping", **options)  # type: ignore[arg-type]
    assert job is not None
    result = await job.result(timeout=20, poll_delay=0.01)
    assert result["database"] == "ok"
    return time.monotonic() - started


async def test_an_announced_job_starts_at_once_though_the_worker_polls_rarely(
    rarely_polling: Settings,
) -> None:
    client = _client(rarely_polling)
    try:
        for _ in range(3):  # each time from idle
            assert await _ping(client) < 2.0
            await asyncio.sleep(0.3)
    finally:
        await client.aclose()


async def test_a_deferred_job_starts_when_it_falls_due(rarely_polling: Settings) -> None:
    client = _client(rarely_polling)
    try:
        took = await _ping(client, _defer_by=timedelta(seconds=1.5))
    finally:
        await client.aclose()
    assert 1.5 <= took < 4.0


async def test_a_job_no_one_announced_starts_within_the_idle_poll(
    polling_every_second: Settings,
) -> None:
    assert polling_every_second.redis.url is not None
    url = polling_every_second.redis.url.get_secret_value()
    plain = await create_pool(arq_redis_settings(url), default_queue_name="chatsys:queue")
    try:
        assert await _ping(plain) < 1.0 + 2.0
    finally:
        await plain.aclose()


async def test_the_one_round_trip_enqueue_keeps_arqs_contract(settings: Settings) -> None:
    """chatsys' enqueue (one script) stores the job as arq's own ``enqueue_job`` does, so
    any arq worker runs it; a second job of the same id, or one whose result is still
    kept, is refused (None) and announces nothing."""
    assert settings.redis.url is not None
    url = settings.redis.url.get_secret_value()
    ours = redis_client(url, queue_name="chatsys:test-contract")
    plain = await create_pool(arq_redis_settings(url), default_queue_name="chatsys:test-arq")
    listener = ours.pubsub()
    try:
        await listener.subscribe("chatsys:wake:chatsys:test-contract")
        await listener.get_message(timeout=1.0)  # the subscribe confirmation
        job = await ours.enqueue_job("chatsys.ping", 1, _job_id="contract-a", flag=True)
        theirs = await plain.enqueue_job("chatsys.ping", 1, _job_id="contract-b", flag=True)
        assert job is not None
        assert theirs is not None
        mine_info, their_info = await job.info(), await theirs.info()
        assert mine_info is not None
        assert their_info is not None
        assert (mine_info.function, mine_info.args, mine_info.kwargs) == (
            their_info.function, their_info.args, their_info.kwargs,
        )  # fmt: skip
        assert await ours.zscore("chatsys:test-contract", "contract-a") is not None
        woke = await listener.get_message(timeout=1.0)
        assert woke is not None
        assert woke["type"] == "message"

        assert await ours.enqueue_job("chatsys.ping", _job_id="contract-a") is None
        await ours.set("arq:result:contract-c", b"kept")
        assert await ours.enqueue_job("chatsys.ping", _job_id="contract-c") is None
        assert await ours.zcard("chatsys:test-contract") == 1
        assert await listener.get_message(timeout=0.3) is None  # no news, no wake-up
    finally:
        await ours.delete("chatsys:test-contract", "chatsys:test-arq", "arq:job:contract-a",
                          "arq:job:contract-b", "arq:result:contract-c")  # fmt: skip
        await listener.aclose()  # type: ignore[no-untyped-call]
        await ours.aclose()
        await plain.aclose()
