"""Ports of tasks: their rows, their event log, the outbox and the run queue."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from chatsys.domain.access.model import AuditEntry
from chatsys.domain.nlu.analyzer import Analysis
from chatsys.domain.planning.planner import Plan
from chatsys.domain.tasks.model import Priority, StepRecord, Task, TaskEvent, TaskStatus


@dataclass(frozen=True, slots=True)
class Lease:
    """What a running task's heartbeat learns: is it still ours, was it cancelled?"""

    owned: bool
    cancel_requested: bool


@dataclass(frozen=True, slots=True)
class QuietClaim:
    """A claimed task whose lease has not been renewed for a while (the sweeper's
    suspect): its runner, and whether the lease is past ``stale_after`` (lapsed)."""

    task_id: UUID
    worker_id: str | None
    lapsed: bool


class WorkerLiveness(Protocol):
    async def dead(self, worker_ids: Collection[str]) -> set[str] | None:
        """Those of ``worker_ids`` whose process is gone; None when that cannot be told
        now (the liveness store is away, or just came back)."""
        ...


class TaskRepository(Protocol):
    async def add(self, task: Task) -> None: ...

    async def add_queued(
        self, task: Task, event: tuple[str, dict[str, Any]], audit: AuditEntry
    ) -> int:
        """``add`` the task with ``event`` as its first event (published after the commit),
        its outbox entry (as ``Outbox.add``) and ``audit``, in one write; returns the
        outbox entry. ``DuplicateRequest`` as ``add``."""
        ...

    async def get(self, task_id: UUID, *, owner: str | None) -> Task | None:
        """``owner=None`` reads any task (the worker); otherwise only the owner's."""
        ...

    async def lock(self, task_id: UUID) -> Task | None:
        """Read the task and hold its row lock until the transaction ends."""
        ...

    async def by_idempotency_key(self, owner: str, key: str) -> Task | None: ...

    async def list_for_owner(
        self,
        owner: str | None,
        *,
        limit: int,
        before: tuple[datetime, UUID] | None,
        status: TaskStatus | None = None,
        conversation_id: UUID | None = None,
    ) -> Sequence[Task]: ...

    # Intent writes: each writes only the columns its change is about, so a write made
    # from an in-memory task can never put back a status or a field changed meanwhile.
    async def set_status(self, task_id: UUID, status: TaskStatus) -> None:
        """A move ``Task.move_to`` allowed (between running and awaiting_approval)."""
        ...

    async def save_analysis(self, task_id: UUID, analysis: Analysis) -> None: ...

    async def save_plan(
        self,
        task_id: UUID,
        plan: Plan,
        steps: Sequence[StepRecord],
        *,
        analysis: Analysis | None = None,
    ) -> None:
        """The (new) plan and its steps (and the analysis it came from, when given, in
        the same write); a new step goes after the task's existing ones."""
        ...

    async def requeue(self, task: Task) -> None:
        """Write what ``Task.requeue`` changed: status, runner, attempt."""
        ...

    async def finish(self, task: Task) -> None:
        """Write what ending the task changed: status, runner, finished_at, result,
        error, usage."""
        ...

    async def save_steps(self, task_id: UUID, steps: Sequence[StepRecord]) -> None: ...

    async def steps(self, task_id: UUID) -> list[StepRecord]: ...

    async def claim(self, task_id: UUID, worker_id: str, *, stale_after: float) -> Task | None:
        """Make ``worker_id`` the one runner of a queued task (or of a running one whose
        heartbeat lapsed). None when another worker holds it or it is finished."""
        ...

    async def heartbeat(self, task_ids: Sequence[UUID], worker_id: str) -> dict[UUID, Lease]:
        """Renew ``worker_id``'s claim of each task; a task it does not hold (any more) is
        left out of the answer. Waits for no other transaction: a task whose row is
        locked meanwhile is answered (still held or not) and renewed at the next beat."""
        ...

    async def release(self, task_id: UUID, worker_id: str) -> None:
        """Stop being the task's runner (its status is the caller's business)."""
        ...

    async def request_cancel(self, task_id: UUID) -> None:
        """Flag a running task for cancellation; its runner sees it at its next heartbeat."""
        ...

    async def quiet(
        self, *, quiet_for: float, stale_after: float, limit: int
    ) -> Sequence[QuietClaim]:
        """Claimed tasks whose heartbeat is older than ``quiet_for`` seconds (the
        database's clock), locked for this transaction (SKIP LOCKED)."""
        ...

    async def count_active(self, owner: str) -> int:
        """The owner's queued, running and waiting tasks; holds a per-owner lock until the
        transaction ends, so concurrent submissions are counted one after the other."""
        ...

    async def tokens_since(self, owner: str, seconds: float) -> int:
        """Tokens used by the owner's steps that finished in the last ``seconds``."""
        ...

    async def progress(self, task_id: UUID) -> tuple[int, TaskStatus] | None:
        """The task's last event ``seq`` and its status (None: no such task)."""
        ...


class EventLog(Protocol):
    """The durable, gapless event log of each task.

    Events appended in a unit of work are published live (see ``LiveFeed``) after
    that unit of work commits, never before: a subscriber never sees an event that
    could still be rolled back.
    """

    async def append(
        self, task_id: UUID, type: str, data: dict[str, Any], *, runner: str | None = None
    ) -> TaskEvent:
        """Append with the next gapless ``seq`` (serialised per task by its row lock).

        With ``runner``, append only while that worker runs the task; ``LookupError``
        otherwise (the fence of a runner that may have lost its lease).
        """
        ...

    async def append_all(
        self,
        task_id: UUID,
        events: Sequence[tuple[str, dict[str, Any]]],
        *,
        runner: str | None = None,
    ) -> list[TaskEvent]:
        """``append`` of each of ``events`` in order, with consecutive ``seq`` (one write)."""
        ...

    async def after(self, task_id: UUID, after: int, *, limit: int) -> Sequence[TaskEvent]: ...


class Outbox(Protocol):
    async def add(self, task_id: UUID) -> int:
        """A new entry, stamped as being dispatched now (its dispatch follows the commit)."""
        ...

    async def pending(
        self, *, older_than: float, lease: float, limit: int
    ) -> Sequence[tuple[int, UUID, Priority]]:
        """Entries to (re)send, locked, with their task's priority: never dispatched and
        at least ``older_than`` seconds old, or dispatched over ``lease`` seconds ago for
        a task still queued."""
        ...

    async def mark_dispatched(self, ids: Sequence[int]) -> None: ...

    async def mark_undispatched(self, ids: Sequence[int]) -> None: ...


class JobQueue(Protocol):
    async def enqueue_run(
        self, task_id: UUID, dispatch_id: int, *, priority: Priority = Priority.NORMAL
    ) -> None: ...


TaskRenderer = Callable[[Task], dict[str, Any]]
"""A task as the API shows it (``GET /v1/tasks/{id}``), as JSON-ready data."""
