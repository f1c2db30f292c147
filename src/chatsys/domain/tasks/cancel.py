"""Cancelling a task."""

from __future__ import annotations

from uuid import UUID

from chatsys.domain.access.model import AuditEntry
from chatsys.domain.shared.clock import Clock
from chatsys.domain.shared.errors import Conflict, NotFound
from chatsys.domain.shared.idempotency import IdempotentRequest, claim_key
from chatsys.domain.shared.uow import Factory
from chatsys.domain.tasks.ending import Callbacks, finish_task
from chatsys.domain.tasks.model import EventType, Task, TaskStatus
from chatsys.domain.tasks.uow import TasksUnitOfWork


class CancelTask:
    """Cancel a task.

    Rules: a queued task is cancelled at once (with its unfinished steps, if it
    was handed back to the queue mid-run); a running one is flagged and its runner
    stops it at its next heartbeat (well within 2 s); a finished task cannot be
    cancelled (conflict naming its status). The check is made under the task's row
    lock, which the runner's end also takes: so a cancel either finds the task
    already ended (conflict) or is accepted, and then the task ends cancelled. A
    task cancelled here calls its webhooks. Under an ``Idempotency-Key`` (``once``) a
    retry gets what the first call answered (the task as it was then), not a conflict.
    """

    def __init__(self, uow: Factory[TasksUnitOfWork], clock: Clock, callbacks: Callbacks) -> None:
        self._uow = uow
        self._clock = clock
        self._callbacks = callbacks

    async def execute(
        self,
        task_id: UUID,
        *,
        owner: str | None,
        actor: str = "system",
        once: IdempotentRequest[Task] | None = None,
    ) -> Task:
        deliveries: list[UUID] = []
        async with self._uow() as uow:
            claim = await claim_key(
                uow, once, "task.cancel", {"task_id": task_id}, at=self._clock.now()
            )
            owned = await uow.tasks.get(task_id, owner=owner)
            if owned is None:
                raise NotFound(f"task {task_id} does not exist")
            task = await uow.tasks.lock(task_id)
            assert task is not None
            if task.status.is_terminal:
                raise Conflict(f"task {task_id} is already {task.status.value}")
            if task.status is TaskStatus.QUEUED:
                deliveries = await finish_task(
                    uow,
                    task,
                    TaskStatus.CANCELLED,
                    EventType.TASK_CANCELLED,
                    {"reason": "cancelled before it started"},
                    at=self._clock.now(),
                    callbacks=self._callbacks,
                )  # task.steps: as they now are
            else:
                await uow.tasks.request_cancel(task_id)
                task.cancel_requested = True
                task.steps = owned.steps
            await uow.audit.add(
                AuditEntry(
                    "task.cancel",
                    actor,
                    target=f"task:{task_id}",
                    task_id=task_id,
                    details={"status": task.status.value},
                )
            )
            await claim.record(task)
            await uow.commit()
        await self._callbacks.dispatch(deliveries)
        return task
