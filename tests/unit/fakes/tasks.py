"""Fakes of the task ports: ``TaskRepository``, ``EventLog``, ``Outbox``, ``JobQueue``,
``WorkerLiveness``.

They follow the rules of the SQL adapters in ``chatsys.infra.db.task_repository``:
- each intent write (``set_status``, ``save_analysis``, ``save_plan``, ``requeue``,
  ``finish``) writes only its own fields (never ``cancel_requested``);
- ``get`` returns the task with its steps; ``lock`` and the other reads without;
- ``claim`` succeeds for a queued task, or a running / awaiting_approval one whose
  heartbeat is missing or older than ``stale_after``, never for one with a cancel
  requested; it stamps the heartbeat, counts an attempt and keeps the first
  ``started_at``;
- ``heartbeat`` holds only for the task's own worker while the task is claimed;
- an event gets the task's next ``seq`` (gapless); a fenced append (``runner``) raises
  ``LookupError`` unless that worker runs the task; so does an append to no task.
Time is the database's: the clock the fake database was given.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from chatsys.domain.access.model import AuditEntry
from chatsys.domain.nlu import Analysis
from chatsys.domain.planning.planner import Plan
from chatsys.domain.shared.errors import DuplicateRequest
from chatsys.domain.tasks.model import Priority, StepRecord, Task, TaskEvent, TaskStatus
from chatsys.domain.tasks.ports import Lease, QuietClaim
from tests.unit.fakes.access import FakeAuditLog
from tests.unit.fakes.session import Session
from tests.unit.fakes.tables import OutboxRow, StepRow, TaskRow

CLAIMED = (TaskStatus.RUNNING, TaskStatus.AWAITING_APPROVAL)
ACTIVE = (TaskStatus.QUEUED, *CLAIMED)


def _read(row: TaskRow) -> Task:
    task = copy.deepcopy(row.task)
    task.cancel_requested = row.cancel_requested_at is not None
    task.steps = []
    return task


class FakeTaskRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    @property
    def _rows(self) -> dict[UUID, TaskRow]:
        return self._s.tables.tasks

    async def add(self, task: Task) -> None:
        self._s.check("tasks.add")
        if task.id in self._rows:
            raise AssertionError(f"task {task.id} was added twice")
        if task.idempotency_key is not None and any(
            r.task.owner == task.owner and r.task.idempotency_key == task.idempotency_key
            for r in self._rows.values()
        ):
            raise DuplicateRequest(f"Idempotency-Key {task.idempotency_key!r} was just used")
        stored = copy.deepcopy(task)
        stored.steps = []  # steps are written by save_steps only
        stored.cancel_requested = False
        self._rows[task.id] = TaskRow(stored)

    async def add_queued(
        self, task: Task, event: tuple[str, dict[str, Any]], audit: AuditEntry
    ) -> int:
        await self.add(task)
        await FakeEventLog(self._s).append(task.id, *event)
        entry = await FakeOutbox(self._s).add(task.id)
        await FakeAuditLog(self._s).add(audit)
        return entry

    async def get(self, task_id: UUID, *, owner: str | None) -> Task | None:
        row = self._rows.get(task_id)
        if row is None or owner not in (None, row.task.owner):
            return None
        task = _read(row)
        task.steps = await self.steps(task_id)
        return task

    async def lock(self, task_id: UUID) -> Task | None:
        row = self._rows.get(task_id)
        return None if row is None else _read(row)

    async def by_idempotency_key(self, owner: str, key: str) -> Task | None:
        for row in self._rows.values():
            if row.task.owner == owner and row.task.idempotency_key == key:
                return _read(row)
        return None

    async def list_for_owner(
        self,
        owner: str | None,
        *,
        limit: int,
        before: tuple[datetime, UUID] | None,
        status: TaskStatus | None = None,
        conversation_id: UUID | None = None,
    ) -> Sequence[Task]:
        rows = [
            r.task
            for r in self._rows.values()
            if owner in (None, r.task.owner)
            and status in (None, r.task.status)
            and conversation_id in (None, r.task.conversation_id)
            and (before is None or (r.task.created_at, r.task.id) < before)
        ]
        rows.sort(key=lambda t: (t.created_at, t.id), reverse=True)
        return [_read(self._rows[t.id]) for t in rows[:limit]]

    def _write(self, operation: str, task_id: UUID) -> Task | None:
        self._s.check(f"tasks.{operation}")
        row = self._rows.get(task_id)
        return None if row is None else row.task

    async def set_status(self, task_id: UUID, status: TaskStatus) -> None:
        if stored := self._write("set_status", task_id):
            stored.status = status

    async def save_analysis(self, task_id: UUID, analysis: Analysis) -> None:
        if stored := self._write("save_analysis", task_id):
            stored.analysis = copy.deepcopy(analysis)

    async def save_plan(
        self,
        task_id: UUID,
        plan: Plan,
        steps: Sequence[StepRecord],
        *,
        analysis: Analysis | None = None,
    ) -> None:
        if stored := self._write("save_plan", task_id):
            stored.plan = copy.deepcopy(plan)
            if analysis is not None:
                stored.analysis = copy.deepcopy(analysis)
        await self.save_steps(task_id, steps)

    async def requeue(self, task: Task) -> None:
        if stored := self._write("requeue", task.id):
            stored.status, stored.worker_id, stored.attempt = (
                task.status,
                task.worker_id,
                task.attempt,
            )

    async def finish(self, task: Task) -> None:
        if stored := self._write("finish", task.id):
            stored.status, stored.worker_id = task.status, task.worker_id
            stored.finished_at = task.finished_at
            stored.result = copy.deepcopy(task.result)
            stored.error = copy.deepcopy(task.error)
            stored.usage = task.usage

    async def save_steps(self, task_id: UUID, steps: Sequence[StepRecord]) -> None:
        """Insert or update by key; a new step goes after the task's existing ones."""
        self._s.check("tasks.save_steps")
        saved = self._s.tables.steps.setdefault(task_id, {})
        existing = len(saved)
        for index, step in enumerate(steps):
            position = saved[step.key].position if step.key in saved else existing + index
            saved[step.key] = StepRow(position, copy.deepcopy(step))

    async def steps(self, task_id: UUID) -> list[StepRecord]:
        return [copy.deepcopy(s.step) for s in self._s.tables.ordered_steps(task_id)]

    async def claim(self, task_id: UUID, worker_id: str, *, stale_after: float) -> Task | None:
        row = self._rows.get(task_id)
        now = self._s.now()
        if row is None or row.cancel_requested_at is not None:
            return None
        lapsed = row.heartbeat_at is None or row.heartbeat_at < now - timedelta(seconds=stale_after)
        status = row.task.status
        if not (status is TaskStatus.QUEUED or (status in CLAIMED and lapsed)):
            return None
        row.task.status = TaskStatus.RUNNING
        row.task.worker_id = worker_id
        row.task.attempt += 1
        row.task.started_at = row.task.started_at or now
        row.heartbeat_at = now
        return _read(row)

    async def heartbeat(self, task_ids: Sequence[UUID], worker_id: str) -> dict[UUID, Lease]:
        leases = {}
        for task_id in task_ids:
            row = self._rows.get(task_id)
            if row is None or row.task.worker_id != worker_id or row.task.status not in CLAIMED:
                continue
            row.heartbeat_at = self._s.now()
            leases[task_id] = Lease(
                owned=True, cancel_requested=row.cancel_requested_at is not None
            )
        return leases

    async def release(self, task_id: UUID, worker_id: str) -> None:
        row = self._rows.get(task_id)
        if row is not None and row.task.worker_id == worker_id:
            row.task.worker_id = None

    async def request_cancel(self, task_id: UUID) -> None:
        row = self._rows.get(task_id)
        if row is not None and row.cancel_requested_at is None:
            row.cancel_requested_at = self._s.now()

    async def quiet(
        self, *, quiet_for: float, stale_after: float, limit: int
    ) -> Sequence[QuietClaim]:
        quiet = self._s.now() - timedelta(seconds=quiet_for)
        lapsed = self._s.now() - timedelta(seconds=stale_after)
        rows = [
            r
            for r in self._rows.values()
            if r.task.status in CLAIMED and r.heartbeat_at is not None and r.heartbeat_at < quiet
        ]
        rows.sort(key=lambda r: r.heartbeat_at or quiet)
        return [
            QuietClaim(r.task.id, r.task.worker_id, (r.heartbeat_at or quiet) < lapsed)
            for r in rows[:limit]
        ]

    async def count_active(self, owner: str) -> int:
        return sum(
            1 for r in self._rows.values() if r.task.owner == owner and r.task.status in ACTIVE
        )

    async def tokens_since(self, owner: str, seconds: float) -> int:
        since = self._s.now() - timedelta(seconds=seconds)
        total = 0
        for row in self._rows.values():
            task = row.task
            recent = task.finished_at is not None and task.finished_at > since
            if task.owner != owner or not (task.status in ACTIVE or recent):
                continue
            for saved in self._s.tables.steps.get(task.id, {}).values():
                step = saved.step
                if step.finished_at is not None and step.finished_at > since:
                    total += step.usage.total_tokens
        return total

    async def progress(self, task_id: UUID) -> tuple[int, TaskStatus] | None:
        row = self._rows.get(task_id)
        return None if row is None else (row.last_seq, row.task.status)


class FakeEventLog:
    def __init__(self, session: Session) -> None:
        self._s = session

    async def append(
        self, task_id: UUID, type: str, data: dict[str, Any], *, runner: str | None = None
    ) -> TaskEvent:
        self._s.check("events.append")
        row = self._s.tables.tasks.get(task_id)
        if row is None or (runner is not None and row.task.worker_id != runner):
            raise LookupError(f"task {task_id} does not exist or is not run by {runner}")
        row.last_seq += 1
        event = TaskEvent(task_id, row.last_seq, type, copy.deepcopy(data), self._s.now())
        self._s.tables.events.setdefault(task_id, []).append(event)
        self._s.appended.append(event)
        return event

    async def append_all(
        self,
        task_id: UUID,
        events: Sequence[tuple[str, dict[str, Any]]],
        *,
        runner: str | None = None,
    ) -> list[TaskEvent]:
        return [await self.append(task_id, kind, data, runner=runner) for kind, data in events]

    async def after(self, task_id: UUID, after: int, *, limit: int) -> Sequence[TaskEvent]:
        events = [e for e in self._s.tables.events.get(task_id, []) if e.seq > after]
        return sorted(events, key=lambda e: e.seq)[:limit]


class FakeOutbox:
    def __init__(self, session: Session) -> None:
        self._s = session

    async def add(self, task_id: UUID) -> int:
        self._s.check("outbox.add")
        tables = self._s.tables
        tables.outbox_seq += 1
        now = self._s.now()
        tables.outbox[tables.outbox_seq] = OutboxRow(tables.outbox_seq, task_id, now, now)
        return tables.outbox_seq

    async def pending(
        self, *, older_than: float, lease: float, limit: int
    ) -> Sequence[tuple[int, UUID, Priority]]:
        now = self._s.now()
        due = now - timedelta(seconds=older_than)
        expired = now - timedelta(seconds=lease)
        tasks = self._s.tables.tasks
        found = []
        for row in sorted(self._s.tables.outbox.values(), key=lambda r: r.id):
            task = tasks.get(row.task_id)
            never_sent = row.dispatched_at is None and row.created_at <= due
            lost = (
                row.dispatched_at is not None
                and row.dispatched_at < expired
                and task is not None
                and task.task.status is TaskStatus.QUEUED
            )
            if task is not None and (never_sent or lost):
                found.append((row.id, row.task_id, task.task.priority))
        return found[:limit]

    async def mark_dispatched(self, ids: Sequence[int]) -> None:
        now = self._s.now()
        for entry_id in ids:
            row = self._s.tables.outbox[entry_id]
            row.dispatched_at = now
            row.attempts += 1

    async def mark_undispatched(self, ids: Sequence[int]) -> None:
        for entry_id in ids:
            self._s.tables.outbox[entry_id].dispatched_at = None


class FakeJobQueue:
    """Records the run jobs; with ``down`` set it fails like a Redis that cannot be reached."""

    def __init__(self) -> None:
        self.runs: list[tuple[UUID, int]] = []
        self.priorities: list[Priority] = []  # of each run job, in order
        self.down = False

    async def enqueue_run(
        self, task_id: UUID, dispatch_id: int, *, priority: Priority = Priority.NORMAL
    ) -> None:
        if self.down:
            raise ConnectionError("the job queue cannot be reached")
        self.runs.append((task_id, dispatch_id))
        self.priorities.append(priority)


class FakeWorkerLiveness:
    """The workers in ``alive`` have a liveness stamp; ``known=False`` is the store
    being away (nobody can be told dead)."""

    def __init__(self, *alive: str) -> None:
        self.alive = set(alive)
        self.known = True

    async def dead(self, worker_ids: Collection[str]) -> set[str] | None:
        if not self.known:
            return None
        return {w for w in worker_ids if w not in self.alive}
