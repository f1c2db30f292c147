"""Fakes of the webhook ports: endpoints, the delivery outbox, its queue, the sender and
the URL guard.

The delivery fake follows ``chatsys.infra.db.webhook_repository``: ``claim`` leases a
delivery that is pending and due (within a 0.5 s margin), or delivering with its lease
expired; the secrets are the task's own (task ``webhook_url``) or the endpoint's, with its
previous secret only while ``previous_secret_expires_at`` is in the future; a deleted or
disabled endpoint gives a ``refusal``. ``record`` counts the attempt (in all, and in this
round) and ends the lease; ``reschedule`` starts a fresh round.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

from chatsys.domain.shared.errors import InvalidInput
from chatsys.domain.webhooks.model import (
    DeliveryStatus,
    OutgoingDelivery,
    SendResult,
    WebhookDelivery,
    WebhookEndpoint,
)
from chatsys.domain.webhooks.ports import AttemptRecord
from tests.unit.fakes.session import Session
from tests.unit.fakes.tables import DeliveryRow

DUE_MARGIN = timedelta(seconds=0.5)
ERROR_MAX = 2000


class FakeWebhookEndpointRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    @property
    def _rows(self) -> dict[UUID, WebhookEndpoint]:
        return self._s.tables.endpoints

    async def add(self, endpoint: WebhookEndpoint) -> None:
        self._rows[endpoint.id] = copy.deepcopy(endpoint)

    async def get(self, endpoint_id: UUID, *, owner: str) -> WebhookEndpoint | None:
        found = self._rows.get(endpoint_id)
        return copy.deepcopy(found) if found is not None and found.owner == owner else None

    async def list_for_owner(
        self, owner: str, *, limit: int, before: tuple[datetime, UUID] | None
    ) -> Sequence[WebhookEndpoint]:
        rows = sorted(
            (e for e in self._rows.values() if e.owner == owner),
            key=lambda e: (e.created_at, e.id),
            reverse=True,
        )
        if before is not None:
            rows = [e for e in rows if (e.created_at, e.id) < before]
        return [copy.deepcopy(e) for e in rows[:limit]]

    async def subscribed(self, owner: str, event_type: str) -> Sequence[WebhookEndpoint]:
        rows = sorted(
            (
                e
                for e in self._rows.values()
                if e.owner == owner and e.enabled and event_type in e.event_types
            ),
            key=lambda e: (e.created_at, e.id),
        )
        return [copy.deepcopy(e) for e in rows]

    async def delete(self, endpoint_id: UUID, *, owner: str) -> bool:
        found = self._rows.get(endpoint_id)
        if found is None or found.owner != owner:
            return False
        del self._rows[endpoint_id]
        return True

    async def set_secrets(
        self,
        endpoint_id: UUID,
        *,
        secret: str,
        previous_secret: str | None,
        previous_secret_expires_at: datetime | None,
    ) -> None:
        found = self._rows.get(endpoint_id)
        if found is not None:
            found.secret = secret
            found.previous_secret = previous_secret
            found.previous_secret_expires_at = previous_secret_expires_at

    async def disable(self, endpoint_id: UUID, *, reason: str, at: datetime) -> None:
        found = self._rows.get(endpoint_id)
        if found is not None and found.disabled_at is None:
            found.disabled_at = at
            found.disabled_reason = reason

    async def admit(
        self, endpoint_id: UUID, *, at: datetime, probe_lease: float
    ) -> datetime | None:
        found = self._rows.get(endpoint_id)
        if found is None or found.paused_until is None:
            return None
        if found.paused_until > at:
            return found.paused_until
        found.paused_until = at + timedelta(seconds=probe_lease)
        return None

    async def record_outcome(
        self, endpoint_id: UUID, *, ok: bool, at: datetime, pause: Callable[[int], float | None]
    ) -> None:
        found = self._rows.get(endpoint_id)
        if found is None:
            return
        found.consecutive_failures = 0 if ok else found.consecutive_failures + 1
        seconds = None if ok else pause(found.consecutive_failures)
        found.paused_until = None if seconds is None else at + timedelta(seconds=seconds)


class FakeWebhookDeliveryRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    @property
    def _rows(self) -> dict[UUID, DeliveryRow]:
        return self._s.tables.deliveries

    async def add(self, delivery: WebhookDelivery) -> None:
        self._s.check("deliveries.add")
        self._rows[delivery.id] = DeliveryRow(copy.deepcopy(delivery), dispatched_at=self._s.now())

    async def claim(self, delivery_id: UUID, *, lease: float) -> OutgoingDelivery | None:
        row = self._rows.get(delivery_id)
        now = self._s.now()
        if row is None:
            return None
        d = row.delivery
        due = (
            d.status is DeliveryStatus.PENDING
            and d.next_attempt_at is not None
            and d.next_attempt_at <= now + DUE_MARGIN
        )
        lapsed = (
            d.status is DeliveryStatus.DELIVERING
            and row.lease_until is not None
            and row.lease_until < now
        )
        if not (due or lapsed):
            return None
        d.status = DeliveryStatus.DELIVERING
        row.lease_until = now + timedelta(seconds=lease)
        secrets, refusal = self._secrets(d, now)
        return OutgoingDelivery(
            id=d.id,
            webhook_id=d.webhook_id,
            url=d.url,
            body=d.body,
            endpoint_id=d.endpoint_id,
            attempt_count=d.attempt_count,
            round_attempts=row.round_attempts,
            secrets=secrets,
            refusal=refusal,
        )

    def _secrets(self, d: WebhookDelivery, now: datetime) -> tuple[tuple[str, ...], str | None]:
        if d.endpoint_id is None:
            task = self._s.tables.tasks.get(d.task_id)
            secret = task.task.webhook_secret if task is not None else None
            if not secret:
                return (), "the task has no webhook signing secret"
            return (secret,), None
        endpoint = self._s.tables.endpoints.get(d.endpoint_id)
        if endpoint is None:
            return (), "the webhook endpoint was deleted"
        if endpoint.disabled_at is not None:
            return (), f"the webhook endpoint is disabled: {endpoint.disabled_reason}"
        expires = endpoint.previous_secret_expires_at
        if endpoint.previous_secret and expires is not None and expires > now:
            return (endpoint.secret, endpoint.previous_secret), None
        return (endpoint.secret,), None

    async def record(self, outcome: AttemptRecord) -> None:
        self._s.check("deliveries.record")
        row = self._rows[outcome.delivery_id]
        attempt = outcome.attempt
        error = attempt.error[:ERROR_MAX] if attempt.error else None
        final = outcome.status.is_final
        d = row.delivery
        d.attempts.append(replace(attempt, error=error))
        d.status = outcome.status
        d.attempt_count = attempt.number
        d.next_attempt_at = outcome.next_attempt_at
        d.last_status_code = attempt.status_code
        d.last_error = error
        d.finished_at = attempt.attempted_at if final else None
        row.round_attempts += 1
        row.lease_until = None
        row.dispatched_at = None if final else self._s.now()

    async def due(
        self, *, grace: float, redispatch_after: float, limit: int
    ) -> Sequence[tuple[UUID, int]]:
        now = self._s.now()
        resend_before = now - timedelta(seconds=redispatch_after)
        overdue = now - timedelta(seconds=grace)
        found = []
        for row in self._rows.values():
            d = row.delivery
            not_recently_sent = row.dispatched_at is None or row.dispatched_at < resend_before
            late = (
                d.status is DeliveryStatus.PENDING
                and d.next_attempt_at is not None
                and d.next_attempt_at <= overdue
            )
            lapsed = (
                d.status is DeliveryStatus.DELIVERING
                and row.lease_until is not None
                and row.lease_until < now
            )
            if not_recently_sent and (late or lapsed):
                found.append(row)
        found.sort(key=lambda r: r.delivery.next_attempt_at or now)
        for row in found[:limit]:
            row.dispatched_at = now
        return [(r.delivery.id, r.delivery.attempt_count) for r in found[:limit]]

    async def mark_undispatched(self, delivery_ids: Sequence[UUID]) -> None:
        for delivery_id in delivery_ids:
            self._rows[delivery_id].dispatched_at = None

    async def get(self, delivery_id: UUID, *, owner: str) -> WebhookDelivery | None:
        row = self._rows.get(delivery_id)
        if row is None or row.delivery.owner != owner:
            return None
        return copy.deepcopy(row.delivery)

    async def list_for_owner(
        self,
        owner: str,
        *,
        limit: int,
        before: tuple[datetime, UUID] | None,
        task_id: UUID | None = None,
        status: DeliveryStatus | None = None,
    ) -> Sequence[WebhookDelivery]:
        rows = [
            r.delivery
            for r in self._rows.values()
            if r.delivery.owner == owner
            and task_id in (None, r.delivery.task_id)
            and status in (None, r.delivery.status)
            and (before is None or (r.delivery.created_at, r.delivery.id) < before)
        ]
        rows.sort(key=lambda d: (d.created_at, d.id), reverse=True)
        return [copy.deepcopy(d) for d in rows[:limit]]

    async def reschedule(self, delivery_id: UUID, *, at: datetime) -> None:
        row = self._rows.get(delivery_id)
        if row is None:
            return
        row.delivery.status = DeliveryStatus.PENDING
        row.delivery.next_attempt_at = at
        row.delivery.finished_at = None
        row.round_attempts = 0
        row.lease_until = None
        row.dispatched_at = self._s.now()

    async def postpone(self, delivery_id: UUID, *, at: datetime) -> None:
        row = self._rows.get(delivery_id)
        if row is None or row.delivery.status is not DeliveryStatus.DELIVERING:
            return
        row.delivery.status = DeliveryStatus.PENDING
        row.delivery.next_attempt_at = at
        row.lease_until = None
        row.dispatched_at = self._s.now()

    async def fail_unfinished(self, endpoint_id: UUID, *, reason: str, at: datetime) -> None:
        for row in self._rows.values():
            d = row.delivery
            if d.endpoint_id == endpoint_id and not d.status.is_final:
                d.status = DeliveryStatus.FAILED
                d.next_attempt_at = None
                d.last_error = reason
                d.finished_at = at
                row.lease_until = None


class FakeWebhookQueue:
    """Records the delivery jobs; with ``down`` set it fails like an unreachable Redis."""

    def __init__(self) -> None:
        self.jobs: list[tuple[UUID, int, float]] = []
        self.down = False

    async def enqueue_delivery(
        self, delivery_id: UUID, attempt: int, *, delay: float, held: bool = False
    ) -> None:
        if self.down:
            raise ConnectionError("the job queue cannot be reached")
        self.jobs.append((delivery_id, attempt, delay))


class FakeWebhookSender:
    """Answers with the scripted results in order (then 200), recording each request."""

    def __init__(self, *results: SendResult) -> None:
        self.results = list(results)
        self.sent: list[tuple[str, dict[str, str], bytes]] = []

    async def send(self, url: str, headers: dict[str, str], body: bytes) -> SendResult:
        self.sent.append((url, dict(headers), body))
        return self.results.pop(0) if self.results else SendResult(200, 1.0)


class FakeUrlGuard:
    """Refuses the URLs it was told about, with the reason given."""

    def __init__(self, refused: dict[str, str] | None = None) -> None:
        self.refused = dict(refused or {})
        self.checked: list[str] = []

    async def check(self, url: str) -> None:
        self.checked.append(url)
        if url in self.refused:
            raise InvalidInput(self.refused[url])
