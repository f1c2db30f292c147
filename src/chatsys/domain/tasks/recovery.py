"""The sweeper: tasks whose runner died (heartbeat lapsed) go back to the queue, or end
cancelled when a cancel was requested before their runner died."""

from __future__ import annotations

from uuid import UUID

from chatsys.domain.shared.clock import Clock
from chatsys.domain.shared.uow import Factory
from chatsys.domain.tasks.ending import Callbacks, cancel_requested_task
from chatsys.domain.tasks.model import EventType, Task, TaskStatus
from chatsys.domain.tasks.submission import Dispatcher
from chatsys.domain.tasks.uow import TasksUnitOfWork

CLAIMED = frozenset({TaskStatus.RUNNING, TaskStatus.AWAITING_APPROVAL})  # held by a runner


async def requeue_or_cancel(
    uow: TasksUnitOfWork,
    task: Task,
    clock: Clock,
    callbacks: Callbacks,
    *,
    reason: str,
    spend_attempt: bool = True,
) -> tuple[int | None, list[UUID]]:
    """In the caller's transaction, for a claimed task (read under its lock) that its
    runner no longer runs: back to the queue (returns the outbox entry to dispatch after
    the commit), or, when a cancel was requested, nobody would claim it again, so it ends
    cancelled here (returns the webhook deliveries to dispatch)."""
    if task.cancel_requested:
        return None, await cancel_requested_task(uow, task, clock, callbacks)
    task.requeue(spend_attempt=spend_attempt)
    await uow.tasks.requeue(task)
    await uow.events.append(task.id, EventType.TASK_REQUEUED, {"reason": reason})
    return await uow.outbox.add(task.id), []


class RequeueStale:
    """The sweeper: tasks whose runner died (heartbeat lapsed) go back to the queue."""

    def __init__(
        self,
        uow: Factory[TasksUnitOfWork],
        dispatcher: Dispatcher,
        clock: Clock,
        *,
        callbacks: Callbacks,
        stale_after: float = 10.0,
    ) -> None:
        self._uow = uow
        self._dispatcher = dispatcher
        self._clock = clock
        self._callbacks = callbacks
        self._stale_after = stale_after

    async def execute(self, *, limit: int = 100) -> list[UUID]:
        entries: list[tuple[int, UUID]] = []
        deliveries: list[UUID] = []
        async with self._uow() as uow:
            for task_id in await uow.tasks.stale(stale_after=self._stale_after, limit=limit):
                task = await uow.tasks.lock(task_id)
                if task is None or task.status not in CLAIMED:
                    continue
                entry, ended = await requeue_or_cancel(
                    uow, task, self._clock, self._callbacks, reason="worker heartbeat lapsed"
                )
                deliveries += ended
                if entry is not None:
                    entries.append((entry, task_id))
            await uow.commit()
        await self._callbacks.dispatch(deliveries)
        for entry, task_id in entries:
            await self._dispatcher.dispatch(entry, task_id)
        return [task_id for _, task_id in entries]
