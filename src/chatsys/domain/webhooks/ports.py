"""Ports of webhooks: endpoints, the delivery outbox, its queue, the sender."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from chatsys.domain.access.ports import AuditLog
from chatsys.domain.shared.idempotency import IdempotencyUnitOfWork
from chatsys.domain.webhooks.model import (
    DeliveryAttempt,
    DeliveryStatus,
    OutgoingDelivery,
    SendResult,
    WebhookDelivery,
    WebhookEndpoint,
)


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

    async def admit(
        self, endpoint_id: UUID, *, at: datetime, probe_lease: float
    ) -> datetime | None:
        """None when an attempt may go to the endpoint now (its circuit is closed, or
        this is the one probe of an open circuit whose pause is over: the pause is
        pushed ``probe_lease`` s on for the others); else when it may."""
        ...

    async def record_outcome(
        self, endpoint_id: UUID, *, ok: bool, at: datetime, pause: Callable[[int], float | None]
    ) -> None:
        """A success closes the circuit; a failure counts, and ``pause(failures)`` says
        how long the endpoint now waits (None: no pause)."""
        ...


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

    async def postpone(self, delivery_id: UUID, *, at: datetime) -> None:
        """Give a claimed delivery back unattempted: pending again, due ``at``, its
        attempt counts untouched."""
        ...


class WebhookQueue(Protocol):
    async def enqueue_delivery(
        self, delivery_id: UUID, attempt: int, *, delay: float, held: bool = False
    ) -> None:
        """A job for the delivery's next attempt (one job id per attempt), ``delay``
        seconds from now. ``held``: the attempt's own job gave it back unattempted (it
        is still running): a job id of its own."""
        ...


class WebhookSender(Protocol):
    """Sends one signed webhook request, refusing addresses the service must not reach."""

    async def send(self, url: str, headers: dict[str, str], body: bytes) -> SendResult: ...


class UrlGuard(Protocol):
    async def check(self, url: str) -> None:
        """Raise ``InvalidInput`` naming the reason when the service must not call ``url``."""
        ...


class WebhooksUnitOfWork(IdempotencyUnitOfWork, Protocol):
    @property
    def webhooks(self) -> WebhookEndpointRepository: ...

    @property
    def deliveries(self) -> WebhookDeliveryRepository: ...

    @property
    def audit(self) -> AuditLog: ...
