"""How a task ends, and the webhooks its end calls for.

Rules:
- every terminal transition (succeeded, failed, cancelled: by its runner, by a
  cancel of a queued task, by the sweeper, by a worker shutting down) goes through
  ``finish_task``, which writes the status, expires the task's pending approvals,
  appends the terminal event and records the webhook deliveries it calls for, all
  in the caller's transaction: a task never ends without its deliveries, and no
  delivery exists for an end that was rolled back;
- a task ending cancelled ends its unfinished steps (pending, running) ``cancelled``
  in that same transaction, each with a ``step.cancelled`` event before the terminal
  one; its completed steps keep their outputs, and its usage is what its steps used;
- a cancel accepted while a runner held the task wins: whatever the runner reached
  (success, failure), its end, read under the task's row lock, is ``cancelled``
  (``end_run``), so an accepted cancel is always followed by ``cancelled``;
- a delivery goes to the task's own ``webhook_url`` and to each enabled endpoint of
  the task's owner subscribed to the event; its body, ``{type, timestamp, data:
  {task}}`` with the task as ``GET /v1/tasks/{id}`` shows it at that moment, is
  fixed when it is recorded and sent unchanged on every attempt;
- after the commit, ``dispatch`` enqueues the first attempts; if that fails the
  worker's relay finds the deliveries in Postgres.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from chatsys.domain.approvals.decisions import expire_pending
from chatsys.domain.shared.clock import Clock
from chatsys.domain.tasks.model import EventType, StepStatus, Task, TaskEvent, TaskStatus, Usage
from chatsys.domain.tasks.ports import TaskRenderer
from chatsys.domain.tasks.uow import TasksUnitOfWork
from chatsys.domain.webhooks.model import (
    WEBHOOK_EVENTS,
    DeliveryStatus,
    RetryPolicy,
    WebhookDelivery,
    new_webhook_id,
)
from chatsys.domain.webhooks.ports import DeliveryNudge

Targets = list[tuple[UUID | None, str]]
"""Where a webhook delivery goes: (endpoint id, or None for the task's own URL; URL)."""


class Callbacks:
    """Records the webhook deliveries a task event calls for, and dispatches them."""

    def __init__(
        self, render: TaskRenderer, nudge: DeliveryNudge, retry: RetryPolicy | None = None
    ) -> None:
        self._render = render
        self._nudge = nudge
        self._retry = retry or RetryPolicy()

    async def targets(self, uow: TasksUnitOfWork, task: Task, event_type: str) -> Targets:
        """In the caller's transaction: where an event of ``event_type`` goes (the task's
        own URL first, then its owner's subscribed endpoints)."""
        if event_type not in WEBHOOK_EVENTS:
            return []
        endpoints = await uow.webhooks.subscribed(task.owner, event_type)
        targets: Targets = [(e.id, e.url) for e in endpoints]
        if task.webhook_url:
            targets.insert(0, (None, task.webhook_url))
        return targets

    async def record(
        self, uow: TasksUnitOfWork, task: Task, event: TaskEvent, targets: Targets | None = None
    ) -> list[UUID]:
        """In the caller's transaction: one delivery per destination (``targets``, read
        now when not given); their ids."""
        if targets is None:
            targets = await self.targets(uow, task, event.type)
        if not targets:
            return []
        current = await uow.tasks.get(task.id, owner=None)  # as GET shows it, steps included
        body = self.body(event, current or task)
        due = event.created_at + timedelta(seconds=self._retry.first_delay())
        ids = []
        for endpoint_id, url in targets:
            delivery_id = uuid4()
            await uow.deliveries.add(
                WebhookDelivery(
                    id=delivery_id,
                    owner=task.owner,
                    task_id=task.id,
                    webhook_id=new_webhook_id(delivery_id),
                    event_type=event.type,
                    url=url,
                    body=body,
                    status=DeliveryStatus.PENDING,
                    created_at=event.created_at,
                    next_attempt_at=due,
                    endpoint_id=endpoint_id,
                )
            )
            ids.append(delivery_id)
        return ids

    def body(self, event: TaskEvent, task: Task) -> str:
        payload: dict[str, Any] = {
            "type": event.type,
            "timestamp": _iso(event),
            "data": {"task": self._render(task)},
        }
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)

    async def dispatch(self, delivery_ids: Sequence[UUID]) -> None:
        """After the commit: the process' webhook slots are told the first attempts are
        due (in another process the slots' poll finds them)."""
        if delivery_ids:
            self._nudge.due(self._retry.first_delay())


def _iso(event: TaskEvent) -> str:
    return event.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def finish_task(
    uow: TasksUnitOfWork,
    task: Task,
    status: TaskStatus,
    event: str,
    data: dict[str, Any],
    *,
    at: datetime,
    callbacks: Callbacks,
) -> list[UUID]:
    """End ``task`` (read under its row lock, its result or error set by the caller) at
    ``at`` in the caller's transaction: status, terminal event, webhook deliveries.
    Returns the deliveries to dispatch after the commit. Approvals of the task still
    pending expire with it. Ending cancelled also ends its unfinished steps, and leaves
    ``task.steps`` as they now are."""
    task.end(status, at)
    if status is TaskStatus.CANCELLED:
        await _cancel_steps(uow, task, at)
    await uow.tasks.finish(task)
    await expire_pending(uow, task, at)
    targets = await callbacks.targets(uow, task, event)  # read first: the event goes last
    appended = await uow.events.append(task.id, event, data)
    return await callbacks.record(uow, task, appended, targets)


async def _cancel_steps(uow: TasksUnitOfWork, task: Task, at: datetime) -> None:
    """The unfinished steps of a task being cancelled end ``cancelled``, each with its
    event; the task's usage becomes what its steps used."""
    steps = await uow.tasks.steps(task.id)
    unfinished = [(s, s.status) for s in steps if not s.status.is_finished]
    for step, _ in unfinished:
        step.status, step.finished_at = StepStatus.CANCELLED, at
    if unfinished:
        await uow.tasks.save_steps(task.id, [step for step, _ in unfinished])
    for step, was in unfinished:
        data = {"step": step.key, "agent": step.agent, "attempt": step.attempt, "was": was.value}
        await uow.events.append(task.id, EventType.STEP_CANCELLED, data)
    task.usage = sum((s.usage for s in steps), Usage())
    task.steps = steps


async def end_run(
    uow: TasksUnitOfWork,
    task: Task,
    status: TaskStatus,
    event: str,
    data: dict[str, Any],
    *,
    clock: Clock,
    callbacks: Callbacks,
) -> tuple[TaskStatus, list[UUID]]:
    """A runner's end of ``task`` (read under its row lock, with the runner's result,
    error and usage set): ``status``, unless a cancel was accepted meanwhile; then the
    task ends cancelled instead, with no result and no error. Returns the status it
    ended with and the deliveries to dispatch after the commit."""
    if task.cancel_requested:
        task.result = task.error = None
        return TaskStatus.CANCELLED, await cancel_requested_task(uow, task, clock, callbacks)
    ended = await finish_task(uow, task, status, event, data, at=clock.now(), callbacks=callbacks)
    return status, ended


async def cancel_requested_task(
    uow: TasksUnitOfWork, task: Task, clock: Clock, callbacks: Callbacks
) -> list[UUID]:
    """End ``task`` as cancelled: its runner stopped, or died, with a cancel requested."""
    return await finish_task(
        uow,
        task,
        TaskStatus.CANCELLED,
        EventType.TASK_CANCELLED,
        {"reason": "cancel requested"},
        at=clock.now(),
        callbacks=callbacks,
    )
