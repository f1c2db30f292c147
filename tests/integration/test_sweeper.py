"""The sweeper on real Postgres: lapsed runners' tasks go back to the queue, or end
cancelled when a cancel was requested before their runner died."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from sqlalchemy import text

from chatsys.bootstrap import Resources
from chatsys.bootstrap.components import webhook_callbacks
from chatsys.domain.tasks.model import StepRecord, StepStatus, Task, TaskStatus, Usage
from chatsys.domain.tasks.recovery import RequeueStale
from chatsys.domain.tasks.submission import Dispatcher
from chatsys.infra.clock import SystemClock
from chatsys.infra.queue import ArqJobQueue
from chatsys.infra.settings import Settings

STEPS = [  # one step done, the next one under way when the runner died
    StepRecord("a", "qa", "i", (), StepStatus.SUCCEEDED, output="done", usage=Usage(3, 2, 0)),
    StepRecord("b", "qa", "i", ("a",), StepStatus.RUNNING, attempt=1),
]


async def _running_task(resources: Resources, *, cancel: bool) -> Task:
    task = Task(uuid4(), "local", "x", TaskStatus.QUEUED, datetime.now(UTC))
    async with resources.unit_of_work() as uow:
        await uow.tasks.add(task)
        await uow.commit()
    async with resources.unit_of_work() as uow:
        assert await uow.tasks.claim(task.id, "dead-worker", stale_after=10) is not None
        await uow.tasks.save_steps(task.id, STEPS)
        if cancel:
            await uow.tasks.request_cancel(task.id)
        await uow.commit()
    async with resources.engine.begin() as conn:  # the runner died a minute ago
        await conn.execute(
            text("UPDATE tasks SET heartbeat_at = now() - interval '60 seconds' WHERE id = :id"),
            {"id": task.id},
        )
    return task


async def test_lapsed_tasks_are_requeued_and_cancel_requests_honoured(settings: Settings) -> None:
    resources = await Resources.open(settings, role="test")
    try:
        plain = await _running_task(resources, cancel=False)
        doomed = await _running_task(resources, cancel=True)
        queue = ArqJobQueue(resources.redis, queue_name=settings.worker.queue_name)
        sweeper = RequeueStale(
            resources.unit_of_work,
            Dispatcher(resources.unit_of_work, queue),
            SystemClock(),
            callbacks=webhook_callbacks(resources),
        )
        assert await sweeper.execute() == [plain.id]
        async with resources.unit_of_work() as uow:
            requeued = await uow.tasks.get(plain.id, owner=None)
            cancelled = await uow.tasks.get(doomed.id, owner=None)
            events = await uow.events.after(doomed.id, 0, limit=10)
        assert requeued is not None
        assert requeued.status is TaskStatus.QUEUED
        assert cancelled is not None
        assert cancelled.status is TaskStatus.CANCELLED
        assert [e.type for e in events[-2:]] == ["step.cancelled", "task.cancelled"]
        assert [(s.key, s.status) for s in cancelled.steps] == [
            ("a", StepStatus.SUCCEEDED),
            ("b", StepStatus.CANCELLED),
        ]
        assert cancelled.steps[1].finished_at is not None
        assert cancelled.usage.total_tokens == 5  # what its steps used
        assert [(s.key, s.status) for s in requeued.steps] == [(s.key, s.status) for s in STEPS]
        assert await resources.redis.zcard(settings.worker.queue_name) == 1
    finally:
        await resources.close()
