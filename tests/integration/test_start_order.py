"""The worker starts the queued job of lowest score (highest priority) in each slot that
frees up, even a job queued after the worker last read the queue, and a high-priority
run has a slot of its own (chatsys issue 14: a high-priority task starts within 1 s
behind 500 low ones)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import UUID, uuid4

import pytest
from arq.connections import ArqRedis
from arq.worker import func

from chatsys.bootstrap import build_worker
from chatsys.domain.tasks.model import Priority
from chatsys.infra.arq_worker import SupervisedWorker
from chatsys.infra.queue import RUN_TASK, ArqJobQueue, is_high_run
from chatsys.infra.redis import arq_redis_settings, redis_client
from chatsys.infra.settings import Settings
from tests.support import eventually, stop_worker

QUEUE = "chatsys:test-start-order"
SLOTS = 2


class _Jobs:
    """Jobs that record their start and run until the test lets them end."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}  # task id -> the test's name for it
        self.started: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}

    async def run(self, ctx: dict[str, Any], task_id: str) -> None:
        name = self.names[task_id]
        self.started.append(name)
        await self.gates.setdefault(name, asyncio.Event()).wait()

    def end(self, name: str) -> None:
        self.gates.setdefault(name, asyncio.Event()).set()


class _RacedWorker(SupervisedWorker):
    """``race`` runs once, between a read of the queue and the starts from that read: the
    moment in which a slot frees and a job is queued while the worker polls."""

    race: Callable[[], Awaitable[None]] | None = None

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        race, self.race = self.race, None
        if race is not None:
            await race()
        await super().start_jobs(job_ids)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[ArqRedis]:
    client = redis_client(redis_url, queue_name=QUEUE)
    yield client
    await client.aclose()


async def test_a_slot_freed_after_a_read_goes_to_a_high_priority_job_queued_since(
    redis: ArqRedis, redis_url: str
) -> None:
    jobs = _Jobs()
    queue = ArqJobQueue(redis, queue_name=QUEUE)

    async def enqueue(name: str, priority: Priority) -> None:
        task_id = uuid4()
        jobs.names[str(task_id)] = name
        await queue.enqueue_run(task_id, 1, priority=priority)

    for n in range(6):
        await enqueue(f"low {n}", Priority.LOW)
    worker = _RacedWorker(
        functions=[func(jobs.run, name=RUN_TASK)],
        queue_name=QUEUE,
        redis_settings=arq_redis_settings(redis_url),
        max_jobs=SLOTS,
        poll_delay=0.01,
        handle_signals=False,
        keep_result=0,
    )
    running = asyncio.create_task(worker.async_run())
    try:
        await eventually(lambda: len(jobs.started) >= SLOTS)
        first, second = jobs.started[:SLOTS]

        async def race() -> None:
            # The read has been taken, with one slot free (the second job's): now a high
            # job is queued and the first job's slot frees too.
            await enqueue("high", Priority.HIGH)
            jobs.end(first)
            await eventually(lambda: worker.job_counter == 0, every=0.005)

        worker.race = race
        jobs.end(second)  # a slot frees: the worker reads the queue
        await eventually(lambda: len(jobs.started) >= SLOTS + 2, within=10)
        after = jobs.started[SLOTS:]
        print(f"\nstarted after the race: {after}")
        # The slot free at the read goes to the next low job of that read (it was first
        # in line then); the slot freed after it, to the high job.
        assert after[0].startswith("low"), after
        assert after[1] == "high", after

        # And the low jobs all run.
        for name in ("low 0", "low 1", "low 2", "low 3", "low 4", "low 5", "high"):
            jobs.end(name)
        await eventually(lambda: len(jobs.started) == 7, within=10)
    finally:
        for name in list(jobs.names.values()):
            jobs.end(name)
        await stop_worker(worker, running)


async def test_one_read_fills_every_slot_free_before_it(redis: ArqRedis, redis_url: str) -> None:
    """Starting only what a read may start costs no throughput: slots free together are
    filled from one read, in order of score."""
    jobs = _Jobs()
    queue = ArqJobQueue(redis, queue_name=QUEUE)
    ids = [UUID(int=n + 1) for n in range(12)]
    for n, task_id in enumerate(ids):
        jobs.names[str(task_id)] = f"job {n}"
        await queue.enqueue_run(task_id, 1, priority=Priority.HIGH if n >= 6 else Priority.LOW)
    reads = 0

    class Counting(SupervisedWorker):
        async def start_jobs(self, job_ids: list[bytes]) -> None:
            nonlocal reads
            reads += 1
            await super().start_jobs(job_ids)

    worker = Counting(
        functions=[func(jobs.run, name=RUN_TASK)],
        queue_name=QUEUE,
        redis_settings=arq_redis_settings(redis_url),
        max_jobs=10,
        poll_delay=0.01,
        handle_signals=False,
        keep_result=0,
    )
    running = asyncio.create_task(worker.async_run())
    try:
        await eventually(lambda: len(jobs.started) == 10, within=10)
        assert reads == 1
        assert set(jobs.started[:6]) == {f"job {n}" for n in range(6, 12)}  # the high ones
    finally:
        for name in jobs.names.values():
            jobs.end(name)
        await stop_worker(worker, running)


async def test_a_high_priority_job_starts_while_every_other_slot_is_busy(
    redis: ArqRedis, redis_url: str
) -> None:
    jobs = _Jobs()
    queue = ArqJobQueue(redis, queue_name=QUEUE)

    async def enqueue(name: str, priority: Priority) -> None:
        task_id = uuid4()
        jobs.names[str(task_id)] = name
        await queue.enqueue_run(task_id, 1, priority=priority)

    for n in range(4):
        await enqueue(f"low {n}", Priority.LOW)
    worker = SupervisedWorker(
        functions=[func(jobs.run, name=RUN_TASK)],
        queue_name=QUEUE,
        redis_settings=arq_redis_settings(redis_url),
        max_jobs=SLOTS + 1,
        reserved=1,
        urgent=is_high_run,
        poll_delay=0.01,
        handle_signals=False,
        keep_result=0,
    )
    running = asyncio.create_task(worker.async_run())
    try:
        await eventually(lambda: len(jobs.started) >= SLOTS)
        await asyncio.sleep(0.3)
        assert len(jobs.started) == SLOTS, jobs.started  # the last slot waits for a high job
        await enqueue("high", Priority.HIGH)
        assert any(is_high_run(raw.decode()) for raw in await redis.zrange(QUEUE, 0, -1))
        await eventually(lambda: "high" in jobs.started, within=2, every=0.01)
        assert len(jobs.started) == SLOTS + 1, jobs.started

        # The low jobs keep their slots, and the high job's is its own again once it ends.
        jobs.end(jobs.started[0])
        await eventually(lambda: len(jobs.started) == SLOTS + 2)
        jobs.end("high")
        await asyncio.sleep(0.3)
        assert len(jobs.started) == SLOTS + 2, jobs.started
    finally:
        for name in list(jobs.names.values()):
            jobs.end(name)
        await stop_worker(worker, running)


def test_the_task_worker_has_its_high_priority_slots(settings: Settings) -> None:
    worker = build_worker(settings, queues=["tasks"])
    config = settings.worker
    assert config.high_priority_slots > 0
    assert worker.max_jobs == config.task_concurrency + config.high_priority_slots
    assert worker._urgent("run:1d2c0a4e-0000-4000-8000-000000000001:7:high")
    assert not worker._urgent("run:1d2c0a4e-0000-4000-8000-000000000001:7")
