"""Ports of webhooks: endpoints, the delivery outbox, the nudge, the sender."""

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
    gone: bool = False  # the receiver answered 410 Gone: its endpoint is disabled


class WebhookDeliveryRepository(Protocol):
    """The webhook outbox: deliveries are added in the transaction of the event that
    calls for them, and leased one attempt at a time."""

    async def add(self, delivery: WebhookDelivery) -> None: ...

    async def claim_due(
        self, *, limit: int, per_receiver: int, lease: float
    ) -> Sequence[OutgoingDelivery]:
        """Lease up to ``limit`` due deliveries for one attempt each, oldest due first:
        pending and due, or delivering with their lease expired (their worker died);
        none to a receiver that already has ``per_receiver`` deliveries leased (one, to
        a paused endpoint whose pause is over: its probe), none to a paused endpoint.
        Claims of every worker see each other's leases."""
        ...

    async def lock_claims(self) -> None:
        """Wait for other transactions' claims to end; no other claim starts until this
        transaction ends (``claim_due`` takes the same lock)."""
        ...

    async def record_and_claim(
        self, outcomes: Sequence[AttemptRecord], *, limit: int, per_receiver: int, lease: float
    ) -> Sequence[OutgoingDelivery]:
        """``record_all`` then ``claim_due`` (with ``limit`` above 0) in one step: the
        claim sees the leases the record freed."""
        ...

    async def record(self, outcome: AttemptRecord) -> None: ...

    async def record_all(self, outcomes: Sequence[AttemptRecord]) -> None:
        """Several finished attempts at once (of different deliveries)."""
        ...

    async def release(self, delivery_ids: Sequence[UUID]) -> None:
        """Give leased deliveries back unattempted (a worker stopping): pending and due
        again, their attempt counts untouched."""
        ...

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


class DeliveryNudge(Protocol):
    """Tells the process' webhook slots (``chatsys.infra.webhook_slots``) that a
    delivery is due in ``delay`` seconds, so they claim it then rather than at their
    next poll. Best effort: a process without slots ignores it, and the poll finds
    every due delivery anyway."""

    def due(self, delay: float = 0.0) -> None: ...


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
