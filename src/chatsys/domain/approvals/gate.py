"""The runner's side of approvals: ask, wait for the decision, expire, go on.

Rules (besides those of ``chatsys.domain.approvals.model``):
- the runner holds the step while it waits: it keeps its claim and its heartbeat,
  so the task is not swept as stale and a cancel still stops it within a
  heartbeat; it polls the approval row every ``poll_interval`` seconds;
- asking writes the approval, puts the task in ``awaiting_approval`` and appends
  ``approval.requested`` (and records the webhooks subscribed to it) in one
  transaction, fenced by the runner's claim;
- an approval expires ``timeout`` seconds after it was asked for, and never after
  the attempt's own time limit (``deadline``): the wait counts towards it, so a
  task cannot outlive its limit by waiting;
- a decision is acted on only while the runner still holds the task (checked under the
  task's row lock when it reads the decision): a runner that lost its claim while it
  waited stops instead of making the call, which its successor makes;
- when the runner stops waiting (decided, expired, or the step stopped) and waits
  on nothing else, the task is ``running`` again;
- a worker dying mid-wait leaves the approval pending: the sweeper re-queues the
  task, the step runs again, and the same call finds the same approval (decided
  meanwhile, or still to wait on, with its original ``expires_at``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from chatsys.domain.approvals.model import Approval, ApprovalStatus, arguments_digest, iso
from chatsys.domain.shared.clock import Clock
from chatsys.domain.shared.uow import Factory
from chatsys.domain.tasks.ending import Callbacks
from chatsys.domain.tasks.model import EventType, Task, TaskStatus
from chatsys.domain.tasks.uow import TasksUnitOfWork

Sleep = Callable[[float], Awaitable[None]]


class ApprovalLeaseLost(Exception):
    """The runner lost its claim on the task while asking or waiting."""


class ApprovalGate:
    """One per running task (its steps may wait on several approvals at once)."""

    def __init__(
        self,
        uow: Factory[TasksUnitOfWork],
        clock: Clock,
        task_id: UUID,
        worker_id: str,
        callbacks: Callbacks,
        *,
        timeout: float = 600.0,
        poll_interval: float = 0.5,
        deadline: datetime | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._task_id = task_id
        self._worker_id = worker_id
        self._callbacks = callbacks
        self._timeout = timeout
        self._poll = poll_interval
        self._deadline = deadline
        self._sleep = sleep
        self._waiting = 0

    async def request(
        self, *, step: str, agent: str, call_id: str, tool: str, arguments: Mapping[str, Any]
    ) -> Approval:
        """The decided approval of this call (approved, denied or expired)."""
        self._waiting += 1  # before asking: a parallel step's resume must see it
        try:
            approval = await self._open(step, agent, call_id, tool, dict(arguments))
            decided = approval if approval.status.is_final else await self._wait(approval)
        except BaseException:
            self._waiting -= 1
            if self._waiting == 0:  # the step stopped: do not leave the task marked waiting
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._resume())
            raise
        self._waiting -= 1
        if self._waiting == 0:
            await self._resume()
        return decided

    async def _locked(self, uow: TasksUnitOfWork) -> Task:
        task = await uow.tasks.lock(self._task_id)
        if task is None or task.worker_id != self._worker_id:
            raise ApprovalLeaseLost(f"task {self._task_id} is no longer run by {self._worker_id}")
        return task

    async def _open(
        self, step: str, agent: str, call_id: str, tool: str, arguments: dict[str, Any]
    ) -> Approval:
        deliveries: list[UUID] = []
        async with self._uow() as uow:
            task = await self._locked(uow)
            now = self._clock.now()
            expires = now + timedelta(seconds=self._timeout)
            if self._deadline is not None:
                expires = max(now, min(expires, self._deadline))
            asked = Approval(
                id=uuid4(),
                task_id=self._task_id,
                step=step,
                agent=agent,
                tool=tool,
                arguments=arguments,
                arguments_digest=arguments_digest(arguments),
                status=ApprovalStatus.PENDING,
                created_at=now,
                expires_at=expires,
                call_id=call_id,
            )
            approval, created = await uow.approvals.add(asked)
            if not approval.status.is_final:
                if task.status is not TaskStatus.AWAITING_APPROVAL:
                    task.move_to(TaskStatus.AWAITING_APPROVAL)
                    await uow.tasks.set_status(task.id, task.status)
                if created:
                    event = await uow.events.append(
                        self._task_id, EventType.APPROVAL_REQUESTED, approval.requested_event()
                    )
                    deliveries = await self._callbacks.record(uow, task, event)
            await uow.commit()
        await self._callbacks.dispatch(deliveries)
        return approval

    async def _wait(self, approval: Approval) -> Approval:
        while True:
            async with self._uow() as uow:
                current = await uow.approvals.get(approval.id)
                if current is not None and current.status.is_final:
                    await self._locked(uow)  # act on a decision only while the task is ours
            if current is None:
                raise ApprovalLeaseLost(f"approval {approval.id} is gone")
            if current.status.is_final:
                return current
            remaining = (current.expires_at - self._clock.now()).total_seconds()
            if remaining <= 0:
                expired = await self._expire(current)
                if expired is not None:
                    return expired
                continue  # decided just before it expired: read the decision
            await self._sleep(min(self._poll, remaining))

    async def _expire(self, approval: Approval) -> Approval | None:
        async with self._uow() as uow:
            await self._locked(uow)
            reason = f"no decision by {iso(approval.expires_at)}"
            decided = await uow.approvals.decide(
                approval.decided(
                    ApprovalStatus.EXPIRED, reason=reason, by=None, at=self._clock.now()
                )
            )
            if decided is not None:
                await uow.events.append(
                    self._task_id, EventType.APPROVAL_DECIDED, decided.decided_event()
                )
            await uow.commit()
        return decided

    async def _resume(self) -> None:
        async with self._uow() as uow:
            task = await uow.tasks.lock(self._task_id)
            if (
                task is None
                or task.worker_id != self._worker_id
                or task.status is not TaskStatus.AWAITING_APPROVAL
                or self._waiting  # another step started waiting meanwhile (checked under the lock)
            ):
                return
            task.move_to(TaskStatus.RUNNING)
            await uow.tasks.set_status(task.id, task.status)
            await uow.commit()
