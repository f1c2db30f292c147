"""Ports: what the domain needs from the outside, as ``typing.Protocol``s.

Adapters in ``chatsys.infra`` and ``chatsys.agents`` implement them; only
``chatsys.bootstrap`` knows which adapter fills which port.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol, Self
from uuid import UUID

from chatsys.domain.health import ProbeResult
from chatsys.domain.model import Conversation, MessageRole, TaskStatus
from chatsys.domain.tasks import StepRecord, Task, TaskEvent


class HealthProbe(Protocol):
    """Checks one component the service depends on."""

    name: str

    async def check(self) -> ProbeResult: ...


class ConversationRepository(Protocol):
    """Conversations, scoped to their owner."""

    async def add(self, conversation: Conversation) -> None: ...

    async def get(self, conversation_id: UUID, *, owner: str) -> Conversation | None: ...

    async def list_for_owner(
        self,
        owner: str,
        *,
        limit: int,
        before: tuple[datetime, UUID] | None,
    ) -> Sequence[Conversation]: ...


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: UUID
    conversation_id: UUID
    role: MessageRole
    content: str
    created_at: datetime
    task_id: UUID | None = None
    agent: str | None = None


class MessageRepository(Protocol):
    async def add(self, message: StoredMessage) -> None: ...

    async def page(
        self, conversation_id: UUID, *, limit: int, after: tuple[datetime, UUID] | None
    ) -> Sequence[StoredMessage]:
        """Oldest first, after the given position."""
        ...

    async def recent(self, conversation_id: UUID, *, limit: int) -> Sequence[StoredMessage]:
        """The last ``limit`` messages, oldest first."""
        ...


@dataclass(frozen=True, slots=True)
class Lease:
    """What a running task's heartbeat learns: is it still ours, was it cancelled?"""

    owned: bool
    cancel_requested: bool


class TaskRepository(Protocol):
    async def add(self, task: Task) -> None: ...

    async def get(self, task_id: UUID, *, owner: str | None) -> Task | None:
        """``owner=None`` reads any task (the worker); otherwise only the owner's."""
        ...

    async def lock(self, task_id: UUID) -> Task | None:
        """Read the task and hold its row lock until the transaction ends."""
        ...

    async def by_idempotency_key(self, owner: str, key: str) -> Task | None: ...

    async def list_for_owner(
        self,
        owner: str,
        *,
        limit: int,
        before: tuple[datetime, UUID] | None,
        status: TaskStatus | None = None,
        conversation_id: UUID | None = None,
    ) -> Sequence[Task]: ...

    async def update(self, task: Task) -> None:
        """Write the task's mutable fields (status, analysis, plan, result, usage, ...)."""
        ...

    async def save_steps(self, task_id: UUID, steps: Sequence[StepRecord]) -> None: ...

    async def steps(self, task_id: UUID) -> list[StepRecord]: ...

    async def claim(self, task_id: UUID, worker_id: str, *, stale_after: float) -> Task | None:
        """Make ``worker_id`` the one runner of a queued task (or of a running one whose
        heartbeat lapsed). None when another worker holds it or it is finished."""
        ...

    async def heartbeat(self, task_id: UUID, worker_id: str) -> Lease: ...

    async def release(self, task_id: UUID, worker_id: str) -> None:
        """Stop being the task's runner (its status is the caller's business)."""
        ...

    async def request_cancel(self, task_id: UUID) -> None:
        """Flag a running task for cancellation; its runner sees it at its next heartbeat."""
        ...

    async def stale(self, *, stale_after: float, limit: int) -> Sequence[UUID]:
        """Running tasks whose heartbeat lapsed, locked for this transaction."""
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

    async def after(self, task_id: UUID, after: int, *, limit: int) -> Sequence[TaskEvent]: ...


class Outbox(Protocol):
    async def add(self, task_id: UUID) -> int:
        """A new entry, stamped as being dispatched now (its dispatch follows the commit)."""
        ...

    async def pending(
        self, *, older_than: float, lease: float, limit: int
    ) -> Sequence[tuple[int, UUID]]:
        """Entries to (re)send, locked: never dispatched and at least ``older_than``
        seconds old, or dispatched over ``lease`` seconds ago for a task still queued."""
        ...

    async def mark_dispatched(self, ids: Sequence[int]) -> None: ...

    async def mark_undispatched(self, ids: Sequence[int]) -> None: ...


class JobQueue(Protocol):
    async def enqueue_run(self, task_id: UUID, dispatch_id: int) -> None: ...


class UnitOfWork(Protocol):
    """One transaction. Nothing is saved unless ``commit`` is called."""

    @property
    def conversations(self) -> ConversationRepository: ...

    @property
    def messages(self) -> MessageRepository: ...

    @property
    def tasks(self) -> TaskRepository: ...

    @property
    def events(self) -> EventLog: ...

    @property
    def outbox(self) -> Outbox: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


class LiveSignal(StrEnum):
    """What a live subscription says besides events."""

    RESYNC = "resync"  # live delivery may have missed events: read the log
    OVERFLOW = "overflow"  # the subscriber fell too far behind; its buffer is gone
    GOING_AWAY = "going_away"  # this process is shutting down


class LiveSubscription(Protocol):
    async def next(self, wait: float) -> TaskEvent | LiveSignal | None:
        """The next live event or signal; None when ``wait`` seconds pass first."""
        ...

    async def ended(self) -> LiveSignal:
        """Wait until the subscription ends (OVERFLOW or GOING_AWAY) and say why."""
        ...


class LiveFeed(Protocol):
    """Events as they are committed, from any process (at most once: the log has the rest).

    Entering a subscription returns only once it is active, so an event committed
    after that is delivered to it.
    """

    def task(
        self, task_id: UUID, *, buffer: int
    ) -> AbstractAsyncContextManager[LiveSubscription]: ...

    def conversation(
        self, conversation_id: UUID, *, buffer: int
    ) -> AbstractAsyncContextManager[LiveSubscription]: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


JsonDict = dict[str, Any]
