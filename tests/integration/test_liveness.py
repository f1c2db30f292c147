"""Worker liveness on real Redis: the stamp thread, what the sweeper reads, and the
sweeper taking a dead worker's task over on real Postgres."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from uuid import UUID, uuid4

import redis.asyncio as aioredis
from sqlalchemy import text

from chatsys.bootstrap import Resources
from chatsys.bootstrap.components import webhook_callbacks
from chatsys.domain.tasks.model import Task, TaskStatus
from chatsys.domain.tasks.recovery import RequeueStale
from chatsys.domain.tasks.submission import Dispatcher
from chatsys.infra.clock import SystemClock
from chatsys.infra.liveness import LivenessStamp, RedisWorkerLiveness, liveness_key
from chatsys.infra.queue import ArqJobQueue
from chatsys.infra.settings import Settings
from tests.support import eventually, free_port

INTERVAL, TTL = 0.2, 1.0


async def _up_for_a_ttl(client: aioredis.Redis) -> None:
    """A Redis up for less than a TTL answers "unknown" (see ``RedisWorkerLiveness``)."""

    async def up() -> bool:
        info = await client.info("server")
        return float(info["uptime_in_seconds"]) >= TTL

    await eventually(up, within=5, every=0.1, message="redis up for a ttl")


def _busy(seconds: float) -> None:
    """Keep the event loop's thread busy with pure Python work (a CPU-bound step)."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1


async def test_the_stamp_outlives_a_busy_event_loop_and_goes_with_the_worker(
    redis_url: str,
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    liveness = RedisWorkerLiveness(client, ttl=TTL)
    live, gone = f"live-{uuid4().hex}", f"gone-{uuid4().hex}"
    stamp = LivenessStamp(redis_url, live, interval=INTERVAL, ttl=TTL)
    await _up_for_a_ttl(client)
    try:
        await stamp.start()
        assert 0 < await client.pttl(liveness_key(live)) <= TTL * 1000
        assert await liveness.dead([live, gone]) == {gone}

        _busy(3 * TTL)  # the loop is blocked three TTLs long; the thread kept stamping
        assert await client.pttl(liveness_key(live)) > (TTL - 2 * INTERVAL) * 1000
        assert await liveness.dead([live]) == set()
    finally:
        await stamp.stop()
    assert await client.exists(liveness_key(live)) == 0  # a clean stop says so at once
    assert await liveness.dead([live]) == {live}
    await client.aclose()


async def test_liveness_is_unknown_while_redis_cannot_be_asked() -> None:
    nowhere = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    liveness = RedisWorkerLiveness(nowhere, ttl=TTL)
    assert await liveness.dead(["anyone"]) is None
    await nowhere.aclose()


async def _running(resources: Resources, worker_id: str, quiet_for: float) -> UUID:
    task = Task(uuid4(), "local", "x", TaskStatus.QUEUED, datetime.now(UTC))
    async with resources.unit_of_work() as uow:
        await uow.tasks.add(task)
        await uow.commit()
    async with resources.unit_of_work() as uow:
        assert await uow.tasks.claim(task.id, worker_id, stale_after=10) is not None
        await uow.commit()
    async with resources.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE tasks SET heartbeat_at = now() - make_interval(secs => :s) WHERE id = :id"
            ),
            {"id": task.id, "s": quiet_for},
        )
    return task.id


async def test_the_sweeper_takes_over_only_the_dead_worker_s_quiet_task(
    settings: Settings, redis_url: str
) -> None:
    resources = await Resources.open(settings, role="test")
    alive = f"alive-{uuid4().hex}"
    stamp = LivenessStamp(redis_url, alive, interval=INTERVAL, ttl=TTL)
    try:
        await stamp.start()
        dead_quiet = await _running(resources, f"dead-{uuid4().hex}", 3)
        dead_fresh = await _running(resources, f"dead-{uuid4().hex}", 0)
        busy = await _running(resources, alive, 3)  # alive, its loop busy for 3 s
        queue = ArqJobQueue(resources.redis, queue_name=settings.worker.queue_name)
        sweeper = RequeueStale(
            resources.unit_of_work, Dispatcher(resources.unit_of_work, queue), SystemClock(),
            callbacks=webhook_callbacks(resources), stale_after=10,
            liveness=RedisWorkerLiveness(resources.redis, ttl=TTL), grace=2,
        )  # fmt: skip
        await _up_for_a_ttl(resources.redis)
        assert await sweeper.execute() == [dead_quiet]
        async with resources.unit_of_work() as uow:
            statuses = [
                t.status if (t := await uow.tasks.get(i, owner=None)) else None
                for i in (dead_quiet, dead_fresh, busy)
            ]
            events = await uow.events.after(dead_quiet, 0, limit=10)
        assert statuses == [TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.RUNNING]
        assert events[-1].data == {"reason": "worker died"}
    finally:
        await stamp.stop()
        await resources.close()
