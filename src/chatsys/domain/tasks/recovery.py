"""The sweeper: tasks whose runner died go back to the queue, or end cancelled when a
cancel was requested before their runner died.

A runner is taken for dead when both of its signs of life stopped:
- its process' liveness stamp is gone (``WorkerLiveness``: a key a thread of the
  worker renews, so a busy event loop does not stop it) and its task's lease (the
  heartbeat the run writes to the database) is older than ``grace`` seconds; or,
- whatever the liveness store says, or when it cannot be asked (a Redis outage: then
  nobody is declared dead on liveness alone), the lease is older than ``stale_after``
  seconds (the backstop, as before liveness existed).
The sweeper never declares its own worker dead. Both ages are the servers' clocks
(Redis' key expiry, the database's ``now()``), never a worker's.
"""

from __future__ import annotations

from uuid import UUID

from chatsys.domain.shared.clock import Clock
from chatsys.domain.shared.uow import Factory
from chatsys.domain.tasks.ending import Callbacks, cancel_requested_task
from chatsys.domain.tasks.model import EventType, Task, TaskStatus
from chatsys.domain.tasks.ports import QuietClaim, WorkerLiveness
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
    """The sweeper: tasks whose runner died go back to the queue (see the module)."""

    def __init__(
        self,
        uow: Factory[TasksUnitOfWork],
        dispatcher: Dispatcher,
        clock: Clock,
        *,
        callbacks: Callbacks,
        stale_after: float = 10.0,
        liveness: WorkerLiveness | None = None,
        grace: float = 2.0,
        worker_id: str | None = None,
    ) -> None:
        self._uow = uow
        self._dispatcher = dispatcher
        self._clock = clock
        self._callbacks = callbacks
        self._stale_after = stale_after
        self._liveness = liveness
        self._grace = min(grace, stale_after)
        self._worker_id = worker_id  # the sweeper's own worker, alive by definition

    async def _dead_runners(self, quiet: list[QuietClaim]) -> set[str]:
        suspects = {
            c.worker_id
            for c in quiet
            if not c.lapsed and c.worker_id is not None and c.worker_id != self._worker_id
        }
        if not suspects or self._liveness is None:
            return set()
        return await self._liveness.dead(suspects) or set()  # None: nobody, on liveness

    async def execute(self, *, limit: int = 100) -> list[UUID]:
        entries: list[tuple[int, Task]] = []
        deliveries: list[UUID] = []
        quiet_for = self._grace if self._liveness is not None else self._stale_after
        async with self._uow() as uow:
            quiet = list(
                await uow.tasks.quiet(
                    quiet_for=quiet_for, stale_after=self._stale_after, limit=limit
                )
            )
            dead = await self._dead_runners(quiet) if quiet else set()
            for claim in quiet:
                if not claim.lapsed and claim.worker_id not in dead:
                    continue
                task = await uow.tasks.lock(claim.task_id)
                if task is None or task.status not in CLAIMED:
                    continue
                reason = "worker heartbeat lapsed" if claim.lapsed else "worker died"
                entry, ended = await requeue_or_cancel(
                    uow, task, self._clock, self._callbacks, reason=reason
                )
                deliveries += ended
                if entry is not None:
                    entries.append((entry, task))
            await uow.commit()
        await self._callbacks.dispatch(deliveries)
        for entry, task in entries:  # a re-queued run keeps its place in line
            await self._dispatcher.dispatch(entry, task.id, priority=task.priority)
        return [task.id for _, task in entries]
