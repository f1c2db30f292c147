"""The sweeper: tasks whose runner died (heartbeat lapsed) go back to the queue, or end
cancelled when a cancel was requested before their runner died."""

from __future__ import annotations

from uuid import UUID

from chatsys.domain.shared.clock import Clock
from chatsys.domain.shared.uow import Factory
from chatsys.domain.tasks.ending import Callbacks, cancel_requested_task
from chatsys.domain.tasks.model import EventType, TaskStatus
from chatsys.domain.tasks.submission import Dispatcher
from chatsys.domain.tasks.uow import TasksUnitOfWork

CLAIMED = frozenset({TaskStatus.RUNNING, TaskStatus.AWAITING_APPROVAL})  # held by a runner


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
                if task.cancel_requested:  # its runner died before it could stop it
                    deliveries += await cancel_requested_task(
                        uow, task, self._clock, self._callbacks
                    )
                    continue
                task.requeue(spend_attempt=True)
                await uow.tasks.update(task)
                await uow.events.append(
                    task_id, EventType.TASK_REQUEUED, {"reason": "worker heartbeat lapsed"}
                )
                entries.append((await uow.outbox.add(task_id), task_id))
            await uow.commit()
        await self._callbacks.dispatch(deliveries)
        for entry, task_id in entries:
            await self._dispatcher.dispatch(entry, task_id)
        return [task_id for _, task_id in entries]
