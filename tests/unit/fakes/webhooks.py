"""Fakes of the webhook ports: endpoints, the delivery outbox, the nudge, the sender and
the URL guard.

The delivery fake follows ``chatsys.infra.db.webhook_repository``: ``claim_due`` leases
deliveries that are pending and due (within a 0.5 s margin), or delivering with their
lease expired, each receiver's oldest first and the receivers in turn, while it has
room (its limit, or one for a paused endpoint whose pause is over, minus its leased
ones; none of a paused endpoint); the secrets are the task's own (task
``webhook_url``) or the endpoint's, with its previous secret only while
``previous_secret_expires_at`` is in the future; a deleted or disabled endpoint gives a
``refusal``. ``record`` counts the attempt (in all, and in this
round) and ends the lease; ``reschedule`` starts a fresh round.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

from chatsys.domain.shared.errors import InvalidInput
from chatsys.domain.webhooks.fairness import receiver_of
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
        receiver = receiver_of(delivery.endpoint_id, delivery.url)
        self._rows[delivery.id] = DeliveryRow(copy.deepcopy(delivery), receiver)

    async def claim_due(
        self, *, limit: int, per_receiver: int, lease: float
    ) -> Sequence[OutgoingDelivery]:
        now = self._s.now()

        def leased(row: DeliveryRow) -> bool:
            return (
                row.delivery.status is DeliveryStatus.DELIVERING
                and row.lease_until is not None
                and row.lease_until >= now
            )

        def due(row: DeliveryRow) -> bool:
            d = row.delivery
            endpoint = self._s.tables.endpoints.get(d.endpoint_id) if d.endpoint_id else None
            if endpoint is not None and endpoint.paused_until and endpoint.paused_until > now:
                return False
            if d.status is DeliveryStatus.PENDING:
                return d.next_attempt_at is not None and d.next_attempt_at <= now + DUE_MARGIN
            return d.status is DeliveryStatus.DELIVERING and not leased(row)

        busy = Counter(r.receiver for r in self._rows.values() if leased(r))
        claimed: list[OutgoingDelivery] = []
        oldest_first = sorted(
            filter(due, self._rows.values()),
            key=lambda r: (r.delivery.next_attempt_at or now, r.delivery.id),
        )
        turns: Counter[str] = Counter()
        in_turn = []  # each receiver's first, then each one's second, ...
        for row in oldest_first:
            turns[row.receiver] += 1
            in_turn.append((turns[row.receiver], row))
        in_turn.sort(key=lambda t: t[0])  # stable: oldest first within a turn
        for _, row in in_turn:
            if len(claimed) == limit:
                break
            d = row.delivery
            endpoint = self._s.tables.endpoints.get(d.endpoint_id) if d.endpoint_id else None
            room = per_receiver if endpoint is None or endpoint.paused_until is None else 1
            if busy[row.receiver] >= room:
                continue
            busy[row.receiver] += 1
            d.status = DeliveryStatus.DELIVERING
            row.lease_until = now + timedelta(seconds=lease)
            secrets, refusal = self._secrets(d, now)
            failing = endpoint is not None and bool(
                endpoint.consecutive_failures or endpoint.paused_until
            )
            claimed.append(
                OutgoingDelivery(
                    id=d.id,
                    webhook_id=d.webhook_id,
                    url=d.url,
                    body=d.body,
                    endpoint_id=d.endpoint_id,
                    attempt_count=d.attempt_count,
                    round_attempts=row.round_attempts,
                    secrets=secrets,
                    refusal=refusal,
                    endpoint_failing=failing,
                )
            )
        return claimed

    async def release(self, delivery_ids: Sequence[UUID]) -> None:
        for delivery_id in delivery_ids:
            row = self._rows[delivery_id]
            if row.delivery.status is DeliveryStatus.DELIVERING:
                row.delivery.status = DeliveryStatus.PENDING
                row.delivery.next_attempt_at = self._s.now()
                row.lease_until = None

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

    async def lock_claims(self) -> None:
        return None  # one fake session at a time: claims never overlap

    async def record_and_claim(
        self, outcomes: Sequence[AttemptRecord], *, limit: int, per_receiver: int, lease: float
    ) -> Sequence[OutgoingDelivery]:
        await self.record_all(outcomes)
        if limit < 1:
            return []
        return await self.claim_due(limit=limit, per_receiver=per_receiver, lease=lease)

    async def record_all(self, outcomes: Sequence[AttemptRecord]) -> None:
        for outcome in outcomes:
            await self.record(outcome)

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

    async def fail_unfinished(self, endpoint_id: UUID, *, reason: str, at: datetime) -> None:
        for row in self._rows.values():
            d = row.delivery
            if d.endpoint_id == endpoint_id and not d.status.is_final:
                d.status = DeliveryStatus.FAILED
                d.next_attempt_at = None
                d.last_error = reason
                d.finished_at = at
                row.lease_until = None


class FakeNudge:
    """Records the delays it was told deliveries are due in."""

    def __init__(self) -> None:
        self.due_in: list[float] = []

    def due(self, delay: float = 0.0) -> None:
        self.due_in.append(delay)


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
