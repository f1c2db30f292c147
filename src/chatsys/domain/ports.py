"""Ports: what the domain needs from the outside, as ``typing.Protocol``s.

Adapters in ``chatsys.infra`` and ``chatsys.agents`` implement them; only
``chatsys.bootstrap`` knows which adapter fills which port.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol, Self
from uuid import UUID

from chatsys.domain.approvals import Approval
from chatsys.domain.health import ProbeResult
from chatsys.domain.identity import ApiKey, AuditEntry, Principal
from chatsys.domain.model import Conversation, MessageRole, TaskStatus
from chatsys.domain.tasks import StepRecord, Task, TaskEvent
from chatsys.domain.webhooks import (
    DeliveryAttempt,
    DeliveryStatus,
    OutgoingDelivery,
    SendResult,
    WebhookDelivery,
    WebhookEndpoint,
)


class HealthProbe(Protocol):
    """Checks one component the service depends on."""

    name: str

    async def check(self) -> ProbeResult: ...


class ConversationRepository(Protocol):
    """Conversations, scoped to their owner."""

    async def add(self, conversation: Conversation) -> None: ...

    async def get(self, conversation_id: UUID, *, owner: str | None) -> Conversation | None:
        """``owner=None``: whoever owns it."""
        ...

    async def list_for_owner(
        self,
        owner: str | None,
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
        owner: str | None,
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


class ApprovalRepository(Protocol):
    """Approvals of tool calls; one per (task, step, tool, arguments digest)."""

    async def add(self, approval: Approval) -> tuple[Approval, bool]:
        """Insert ``approval``, or (when that call was asked for before) return the existing
        one; the flag says whether it was inserted."""
        ...

    async def get(self, approval_id: UUID) -> Approval | None: ...

    async def list_for_task(self, task_id: UUID) -> Sequence[Approval]:
        """Oldest first."""
        ...

    async def decide(self, approval: Approval) -> Approval | None:
        """Write the decision carried by ``approval`` if it is still pending in the
        database; None when it was decided already."""
        ...

    async def pending_count(self, task_id: UUID) -> int: ...

    async def expire_pending(
        self, task_id: UUID, *, reason: str, at: datetime
    ) -> Sequence[Approval]:
        """Expire every pending approval of the task; the ones expired."""
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


class WebhookEndpointRepository(Protocol):
    """Registered webhook endpoints, scoped to their owner."""

    async def add(self, endpoint: WebhookEndpoint) -> None: ...

    async def get(self, endpoint_id: UUID, *, owner: str) -> WebhookEndpoint | None: ...

    async def list_for_owner(
        self, owner: str, *, limit: int, before: tuple[datetime, UUID] | None
    ) -> Sequence[WebhookEndpoint]: ...

    async def subscribed(self, owner: str, event_type: str) -> Sequence[WebhookEndpoint]:
        """The owner's enabled endpoints that want ``event_type``."""
        ...

    async def delete(self, endpoint_id: UUID, *, owner: str) -> bool: ...

    async def set_secrets(
        self,
        endpoint_id: UUID,
        *,
        secret: str,
        previous_secret: str | None,
        previous_secret_expires_at: datetime | None,
    ) -> None: ...

    async def disable(self, endpoint_id: UUID, *, reason: str, at: datetime) -> None: ...


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One finished attempt and what it decides: the delivery's new status and, when it
    is to be tried again, when."""

    delivery_id: UUID
    attempt: DeliveryAttempt
    status: DeliveryStatus
    next_attempt_at: datetime | None


class WebhookDeliveryRepository(Protocol):
    """The webhook outbox: deliveries are added in the transaction of the event that
    calls for them, and leased one attempt at a time."""

    async def add(self, delivery: WebhookDelivery) -> None: ...

    async def claim(self, delivery_id: UUID, *, lease: float) -> OutgoingDelivery | None:
        """Lease a due delivery for one attempt (pending and due, or delivering with its
        lease expired); None when it is not due, finished or leased by someone else."""
        ...

    async def record(self, outcome: AttemptRecord) -> None: ...

    async def due(
        self, *, grace: float, redispatch_after: float, limit: int
    ) -> Sequence[tuple[UUID, int]]:
        """Deliveries whose job may be lost, locked (SKIP LOCKED) and stamped as dispatched:
        pending ones due ``grace`` seconds ago and not dispatched in the last
        ``redispatch_after`` seconds, and delivering ones whose lease expired. Returns
        (id, attempts made) pairs."""
        ...

    async def mark_undispatched(self, delivery_ids: Sequence[UUID]) -> None: ...

    async def get(self, delivery_id: UUID, *, owner: str) -> WebhookDelivery | None: ...

    async def list_for_owner(
        self,
        owner: str,
        *,
        limit: int,
        before: tuple[datetime, UUID] | None,
        task_id: UUID | None = None,
        status: DeliveryStatus | None = None,
    ) -> Sequence[WebhookDelivery]:
        """Newest first, each with its attempts."""
        ...

    async def reschedule(self, delivery_id: UUID, *, at: datetime) -> None:
        """Make a finished delivery pending again, its retry schedule started afresh."""
        ...

    async def fail_unfinished(self, endpoint_id: UUID, *, reason: str, at: datetime) -> None:
        """End the endpoint's pending deliveries (it is being deleted)."""
        ...


class WebhookQueue(Protocol):
    async def enqueue_delivery(self, delivery_id: UUID, attempt: int, *, delay: float) -> None:
        """A job for the delivery's next attempt (one job id per attempt), ``delay``
        seconds from now."""
        ...


class WebhookSender(Protocol):
    """Sends one signed webhook request, refusing addresses the service must not reach."""

    async def send(self, url: str, headers: dict[str, str], body: bytes) -> SendResult: ...


class UrlGuard(Protocol):
    async def check(self, url: str) -> None:
        """Raise ``InvalidInput`` naming the reason when the service must not call ``url``."""
        ...


TaskRenderer = Callable[[Task], dict[str, Any]]
"""A task as the API shows it (``GET /v1/tasks/{id}``), as JSON-ready data."""


class ApiKeyRepository(Protocol):
    async def add(self, key: ApiKey) -> None: ...

    async def get(self, key_id: UUID) -> ApiKey | None: ...

    async def by_prefix(self, prefix: str) -> ApiKey | None: ...

    async def page(self, *, limit: int, before: tuple[datetime, UUID] | None) -> Sequence[ApiKey]:
        """Newest first."""
        ...

    async def revoke(self, key_id: UUID, at: datetime) -> None: ...

    async def touch(self, key_id: UUID, at: datetime) -> None:
        """Record a use (at most once a minute is written)."""
        ...

    async def count_active(self) -> int: ...


class AuditLog(Protocol):
    """Append-only; written in the transaction of the change it records."""

    async def add(self, entry: AuditEntry) -> None: ...

    async def page(
        self,
        *,
        limit: int,
        before: tuple[datetime, UUID] | None,
        actor: str | None,
        action: str | None,
        task_id: UUID | None,
        since: datetime | None,
        until: datetime | None,
    ) -> Sequence[AuditEntry]:
        """Newest first."""
        ...


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int  # requests per period
    remaining: int
    reset_after: float  # seconds until the full allowance is back
    retry_after: float  # seconds to wait when refused (0 when allowed)


class RateLimiter(Protocol):
    """A shared (cross-process) limit of ``limit`` hits per ``period`` seconds per key."""

    async def hit(self, key: str, *, limit: int, period: float) -> RateDecision: ...


class TicketStore(Protocol):
    """Short-lived stand-ins for a key, fit to go in a URL."""

    ttl: float

    async def issue(self, principal: Principal) -> str: ...

    async def resolve(self, ticket: str) -> Principal | None: ...


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

    @property
    def webhooks(self) -> WebhookEndpointRepository: ...

    @property
    def deliveries(self) -> WebhookDeliveryRepository: ...

    @property
    def api_keys(self) -> ApiKeyRepository: ...

    @property
    def audit(self) -> AuditLog: ...

    @property
    def approvals(self) -> ApprovalRepository: ...

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
