"""Taking a dead worker's task over early: its liveness stamp is gone and its lease is
quiet for the grace; a live but busy worker, an unknown liveness (Redis away) and the
sweeper's own worker wait for the lease backstop (``stale_after``)."""

from __future__ import annotations

import asyncio
from uuid import UUID

from chatsys.domain.tasks.model import EventType, Priority, StepStatus, TaskStatus
from chatsys.domain.tasks.recovery import RequeueStale
from tests.unit.fakes import BlockingLLM, FakeWorkerLiveness
from tests.unit.world import STALE_AFTER, World, until

AGENTS = ["developer", "reviewer"]
NEVER = 3600.0  # the heartbeat interval of a runner that is about to "die"
GRACE = 2.0


def sweeper(w: World, liveness: FakeWorkerLiveness, *, worker_id: str = "b") -> RequeueStale:
    return RequeueStale(
        w.db.uow, w.dispatcher, w.clock, callbacks=w.callbacks, stale_after=STALE_AFTER,
        liveness=liveness, grace=GRACE, worker_id=worker_id,
    )  # fmt: skip


async def running(w: World, llm: BlockingLLM) -> tuple[UUID, asyncio.Task[TaskStatus | None]]:
    """Worker ``a`` runs a task up to its held step, and renews its lease no more."""
    task_id = await w.submitted(agents=AGENTS)
    run = asyncio.create_task(w.runner("a", llm, heartbeat_interval=NEVER).execute(task_id))
    await until(lambda: llm.calls_for(llm.held) == 1)
    return task_id, run


def last_reason(w: World, task_id: UUID) -> object:
    event = w.db.committed.events[task_id][-1]
    assert event.type == EventType.TASK_REQUEUED
    return event.data["reason"]


async def stop(run: asyncio.Task[TaskStatus | None]) -> None:
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)


async def test_a_dead_worker_s_task_is_requeued_once_its_lease_is_quiet_for_the_grace() -> None:
    w = World()
    task_id, run = await running(w, BlockingLLM("reviewer_2"))
    liveness = FakeWorkerLiveness("b")  # a's stamp is gone
    try:
        w.clock.advance(GRACE - 0.5)
        assert await sweeper(w, liveness).execute() == []  # a lease renewed just now
        w.clock.advance(1)
        assert await sweeper(w, liveness).execute() == [task_id]  # long before STALE_AFTER
        task = w.task(task_id)
        assert (task.status, task.worker_id) == (TaskStatus.QUEUED, None)
        assert last_reason(w, task_id) == "worker died"
    finally:
        await stop(run)


async def test_a_live_worker_whose_lease_is_quiet_keeps_its_task_until_the_backstop() -> None:
    w = World()
    task_id, run = await running(w, BlockingLLM("reviewer_2"))
    liveness = FakeWorkerLiveness("a", "b")  # a's event loop is busy, its process alive
    try:
        w.clock.advance(STALE_AFTER - 1)
        assert await sweeper(w, liveness).execute() == []
        assert w.task(task_id).worker_id == "a"
        w.clock.advance(2)
        assert await sweeper(w, liveness).execute() == [task_id]
        assert last_reason(w, task_id) == "worker heartbeat lapsed"
    finally:
        await stop(run)


async def test_nobody_is_declared_dead_while_liveness_cannot_be_told() -> None:
    w = World()
    task_id, run = await running(w, BlockingLLM("reviewer_2"))
    liveness = FakeWorkerLiveness()
    liveness.known = False  # Redis is away: every stamp looks missing
    try:
        w.clock.advance(STALE_AFTER - 1)
        assert await sweeper(w, liveness).execute() == []
        assert w.task(task_id).status is TaskStatus.RUNNING
    finally:
        await stop(run)


async def test_the_sweeper_never_declares_its_own_worker_dead() -> None:
    w = World()
    task_id, run = await running(w, BlockingLLM("reviewer_2"))
    try:
        w.clock.advance(STALE_AFTER - 1)
        assert await sweeper(w, FakeWorkerLiveness(), worker_id="a").execute() == []
        assert w.task(task_id).worker_id == "a"
    finally:
        await stop(run)


async def test_a_worker_taken_for_dead_that_claims_its_task_again_never_runs_it_twice() -> None:
    """Worker ``a`` was only stopped (SIGSTOP): another sweeper re-queued its task, and the
    new job lands on ``a`` itself while its first run is still in a step."""
    w = World()
    llm = BlockingLLM("developer_1")
    task_id = await w.submitted(agents=AGENTS)
    worker_a = w.runner("a", llm, heartbeat_interval=NEVER)  # stopped: no heartbeat runs
    first = asyncio.create_task(worker_a.execute(task_id))
    await until(lambda: llm.calls_for("developer_1") == 1)
    w.clock.advance(GRACE + 1)  # the fake clock: a's lease looks quiet for a while
    assert await sweeper(w, FakeWorkerLiveness("b")).execute() == [task_id]

    second = asyncio.create_task(worker_a.execute(task_id))
    await asyncio.sleep(0.05)
    assert w.task(task_id).status is TaskStatus.QUEUED  # the first run has not stopped yet
    llm.release.set()  # the first run's step ends: its write is refused, it stops

    assert await first is None
    assert await second is TaskStatus.SUCCEEDED
    task = w.task(task_id)
    assert [(s.key, s.status) for s in task.steps] == [
        ("developer_1", StepStatus.SUCCEEDED),
        ("reviewer_2", StepStatus.SUCCEEDED),
        ("answer", StepStatus.SUCCEEDED),
    ]
    assert w.events(task_id).count(EventType.STEP_COMPLETED) == 3  # nothing doubled
    assert llm.calls_for("developer_1") == 2  # the step under way at the stop: run again
    assert llm.calls_for("reviewer_2") == 1
    assert task.attempt == 2


async def test_a_taken_over_task_goes_back_to_the_queue_with_its_priority() -> None:
    w = World()
    llm = BlockingLLM("reviewer_2")
    task_id = await w.submitted(agents=AGENTS, priority=Priority.HIGH)
    run = asyncio.create_task(w.runner("a", llm, heartbeat_interval=NEVER).execute(task_id))
    await until(lambda: llm.calls_for(llm.held) == 1)
    try:
        w.clock.advance(GRACE + 1)
        assert await sweeper(w, FakeWorkerLiveness("b")).execute() == [task_id]
        assert w.jobs.priorities[-1] == Priority.HIGH  # not sent back at normal
    finally:
        await stop(run)
