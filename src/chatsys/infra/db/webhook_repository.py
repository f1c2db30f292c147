"""SQL adapters for webhook endpoints and the webhook delivery outbox."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Interval, bindparam, delete, func, insert, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatsys.domain.webhooks.fairness import receiver_of
from chatsys.domain.webhooks.model import (
    DeliveryAttempt,
    DeliveryStatus,
    OutgoingDelivery,
    WebhookDelivery,
    WebhookEndpoint,
)
from chatsys.domain.webhooks.ports import AttemptRecord
from chatsys.infra.db.models import (
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
)

# A job may fire a moment before the row's due time (its delay was computed by another
# clock than Postgres'): an attempt due within this margin may start.
DUE_MARGIN = timedelta(seconds=0.5)
ERROR_MAX = 2000

_E = WebhookEndpointRow
_D = WebhookDeliveryRow
_A = WebhookAttemptRow


def _to_endpoint(row: WebhookEndpointRow) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row.id,
        owner=row.owner,
        url=row.url,
        secret=row.secret,
        event_types=tuple(row.event_types),
        created_at=row.created_at,
        description=row.description,
        previous_secret=row.previous_secret,
        previous_secret_expires_at=row.previous_secret_expires_at,
        disabled_at=row.disabled_at,
        disabled_reason=row.disabled_reason,
        consecutive_failures=row.consecutive_failures,
        paused_until=row.paused_until,
    )


class SqlWebhookEndpoints:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, endpoint: WebhookEndpoint) -> None:
        await self._session.execute(
            insert(_E).values(
                id=endpoint.id,
                owner=endpoint.owner,
                url=endpoint.url,
                description=endpoint.description,
                secret=endpoint.secret,
                event_types=list(endpoint.event_types),
                created_at=endpoint.created_at,
                updated_at=endpoint.created_at,
            )
        )

    async def get(self, endpoint_id: UUID, *, owner: str) -> WebhookEndpoint | None:
        row = await self._session.scalar(select(_E).where(_E.id == endpoint_id, _E.owner == owner))
        return None if row is None else _to_endpoint(row)

    async def list_for_owner(
        self, owner: str, *, limit: int, before: tuple[datetime, UUID] | None
    ) -> Sequence[WebhookEndpoint]:
        query = select(_E).where(_E.owner == owner)
        if before is not None:
            query = query.where(tuple_(_E.created_at, _E.id) < tuple_(*before))
        query = query.order_by(_E.created_at.desc(), _E.id.desc()).limit(limit)
        return [_to_endpoint(r) for r in await self._session.scalars(query)]

    async def subscribed(self, owner: str, event_type: str) -> Sequence[WebhookEndpoint]:
        rows = await self._session.scalars(
            select(_E)
            .where(
                _E.owner == owner,
                _E.disabled_at.is_(None),
                _E.event_types.contains([event_type]),
            )
            .order_by(_E.created_at, _E.id)
        )
        return [_to_endpoint(r) for r in rows]

    async def delete(self, endpoint_id: UUID, *, owner: str) -> bool:
        gone = await self._session.scalar(
            delete(_E).where(_E.id == endpoint_id, _E.owner == owner).returning(_E.id)
        )
        return gone is not None

    async def set_secrets(
        self,
        endpoint_id: UUID,
        *,
        secret: str,
        previous_secret: str | None,
        previous_secret_expires_at: datetime | None,
    ) -> None:
        await self._session.execute(
            update(_E)
            .where(_E.id == endpoint_id)
            .values(
                secret=secret,
                previous_secret=previous_secret,
                previous_secret_expires_at=previous_secret_expires_at,
                updated_at=func.now(),
            )
        )

    async def disable(self, endpoint_id: UUID, *, reason: str, at: datetime) -> None:
        await self._session.execute(
            update(_E)
            .where(_E.id == endpoint_id, _E.disabled_at.is_(None))
            .values(disabled_at=at, disabled_reason=reason, updated_at=func.now())
        )

    async def record_outcome(
        self, endpoint_id: UUID, *, ok: bool, at: datetime, pause: Callable[[int], float | None]
    ) -> None:
        if ok:
            await self._session.execute(
                update(_E)
                .where(_E.id == endpoint_id)
                .values(consecutive_failures=0, paused_until=None)
            )
            return
        failures = await self._session.scalar(
            update(_E)
            .where(_E.id == endpoint_id)
            .values(consecutive_failures=_E.consecutive_failures + 1)
            .returning(_E.consecutive_failures)
        )
        seconds = pause(int(failures)) if failures is not None else None
        await self._session.execute(
            update(_E)
            .where(_E.id == endpoint_id)
            .values(paused_until=None if seconds is None else at + timedelta(seconds=seconds))
        )


def _to_delivery(row: WebhookDeliveryRow, attempts: list[DeliveryAttempt]) -> WebhookDelivery:
    return WebhookDelivery(
        id=row.id,
        owner=row.owner,
        task_id=row.task_id,
        webhook_id=row.webhook_id,
        event_type=row.event_type,
        url=row.url,
        body=row.body,
        status=DeliveryStatus(row.status),
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        endpoint_id=row.endpoint_id,
        attempt_count=row.attempt_count,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        finished_at=row.finished_at,
        attempts=attempts,
    )


_UNFINISHED = (DeliveryStatus.PENDING.value, DeliveryStatus.DELIVERING.value)

_CLAIM_LOCK = text("SELECT pg_advisory_xact_lock(7263108415210240001)")  # webhook claims
# Due deliveries, each receiver's oldest first and the receivers in turn (everyone's
# first, then everyone's second, ...), while a receiver has room: its limit (one for a
# paused endpoint whose pause is over: the probe; none while it is paused) minus what
# is leased to it; and deliveries whose lease ran out (their worker died). Leased with
# their signing secrets, in one statement. The receivers with pending deliveries are
# found by a skip scan of the (receiver, next_attempt_at) index and each one's due
# rows read up to its room, so a claim costs what it takes, not the backlog's size.
# The status is checked again on the row itself: a delete or a recorded attempt since
# the statement's snapshot wins.
_CLAIM_DUE = text(
    """
    WITH RECURSIVE receivers AS (
        (SELECT receiver FROM webhook_deliveries WHERE status = 'pending'
         ORDER BY receiver LIMIT 1)
        UNION ALL
        SELECT (SELECT d.receiver FROM webhook_deliveries d
                WHERE d.status = 'pending' AND d.receiver > r.receiver
                ORDER BY d.receiver LIMIT 1)
        FROM receivers r WHERE r.receiver IS NOT NULL
    ), busy AS (
        SELECT receiver, count(*) AS n FROM webhook_deliveries
        WHERE status = 'delivering' AND lease_until >= now()
        GROUP BY receiver
    ), room AS (
        SELECT r.receiver,
               CASE WHEN e.paused_until IS NULL THEN CAST(:per AS integer)
                    WHEN e.paused_until <= now() THEN 1 ELSE 0 END
                   - coalesce(b.n, 0) AS n
        FROM receivers r
        LEFT JOIN busy b ON b.receiver = r.receiver
        LEFT JOIN webhook_endpoints e ON e.id = CASE WHEN r.receiver LIKE 'endpoint:%'
                                                THEN CAST(substr(r.receiver, 10) AS uuid) END
        WHERE r.receiver IS NOT NULL
    ), due AS (
        SELECT c.id, c.next_attempt_at, c.endpoint_id, c.task_id, c.turn
        FROM room CROSS JOIN LATERAL (
            SELECT d.id, d.next_attempt_at, d.endpoint_id, d.task_id,
                   row_number() OVER (ORDER BY d.next_attempt_at, d.id) AS turn
            FROM webhook_deliveries d
            WHERE d.receiver = room.receiver AND d.status = 'pending'
              AND d.next_attempt_at <= now() + :margin
            ORDER BY d.next_attempt_at, d.id
            LIMIT greatest(room.n, 0)
        ) c
        UNION ALL
        SELECT id, next_attempt_at, endpoint_id, task_id, 1 FROM webhook_deliveries
        WHERE status = 'delivering' AND lease_until < now()
    ), picked AS (
        SELECT id, endpoint_id, task_id FROM due
        ORDER BY turn, next_attempt_at, id LIMIT CAST(:limit AS integer)
    )
    UPDATE webhook_deliveries d
    SET status = 'delivering', lease_until = now() + CAST(:lease AS interval),
        updated_at = now()
    FROM picked p
    LEFT JOIN webhook_endpoints e ON e.id = p.endpoint_id
    LEFT JOIN tasks t ON p.endpoint_id IS NULL AND t.id = p.task_id
    WHERE d.id = p.id
      AND ((d.status = 'pending' AND d.next_attempt_at <= now() + :margin)
           OR (d.status = 'delivering' AND d.lease_until < now()))
    RETURNING d.id, d.webhook_id, d.url, d.body, d.endpoint_id, d.attempt_count,
              d.round_attempts, e.id IS NOT NULL AS endpoint_found, e.secret,
              CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret END
                  AS previous_secret,
              e.disabled_at IS NOT NULL AS disabled, e.disabled_reason,
              coalesce(e.consecutive_failures, 0) > 0 OR e.paused_until IS NOT NULL
                  AS failing,
              t.webhook_secret AS task_secret
    """
).bindparams(bindparam("margin", DUE_MARGIN, type_=Interval()))


# Finished attempts, any number in one statement: each attempt's row (a data-modifying
# CTE) and its delivery's new state.
_RECORD_ALL = text(
    """
    WITH v AS (
        SELECT * FROM unnest(
            CAST(:ids AS uuid[]), CAST(:numbers AS integer[]),
            CAST(:at AS timestamptz[]), CAST(:codes AS integer[]),
            CAST(:latencies AS double precision[]), CAST(:errors AS text[]),
            CAST(:statuses AS text[]), CAST(:next AS timestamptz[]), CAST(:final AS boolean[])
        ) AS v(id, number, at, code, latency, error, status, next_at, final)
    ), added AS (
        INSERT INTO webhook_attempts
            (delivery_id, number, attempted_at, status_code, latency_ms, error)
        SELECT id, number, at, code, latency, error FROM v
    )
    UPDATE webhook_deliveries d
    SET status = v.status, attempt_count = v.number, round_attempts = d.round_attempts + 1,
        next_attempt_at = v.next_at, lease_until = NULL, last_status_code = v.code,
        last_error = v.error, finished_at = CASE WHEN v.final THEN v.at END,
        updated_at = now()
    FROM v WHERE d.id = v.id
    """
)


def _outgoing(row: Any) -> OutgoingDelivery:
    refusal = None
    secrets: tuple[str, ...] = ()
    if row.endpoint_id is None:
        if row.task_secret:
            secrets = (row.task_secret,)
        else:
            refusal = "the task has no webhook signing secret"
    elif not row.endpoint_found:
        refusal = "the webhook endpoint was deleted"
    elif row.disabled:
        refusal = f"the webhook endpoint is disabled: {row.disabled_reason}"
    else:
        secrets = (row.secret, row.previous_secret) if row.previous_secret else (row.secret,)
    return OutgoingDelivery(
        id=row.id,
        webhook_id=row.webhook_id,
        url=row.url,
        body=row.body,
        endpoint_id=row.endpoint_id,
        attempt_count=row.attempt_count,
        round_attempts=row.round_attempts,
        secrets=secrets,
        refusal=refusal,
        endpoint_failing=bool(row.failing),
    )


class SqlWebhookDeliveries:
    """One per unit of work (one transaction)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._claims_locked = False  # this transaction holds the claims' lock

    async def add(self, delivery: WebhookDelivery) -> None:
        await self._session.execute(
            insert(_D).values(
                id=delivery.id,
                webhook_id=delivery.webhook_id,
                owner=delivery.owner,
                task_id=delivery.task_id,
                endpoint_id=delivery.endpoint_id,
                receiver=receiver_of(delivery.endpoint_id, delivery.url),
                event_type=delivery.event_type,
                url=delivery.url,
                body=delivery.body,
                status=delivery.status.value,
                next_attempt_at=delivery.next_attempt_at,
                created_at=delivery.created_at,
                updated_at=delivery.created_at,
            )
        )

    async def claim_due(
        self, *, limit: int, per_receiver: int, lease: float
    ) -> Sequence[OutgoingDelivery]:
        if limit < 1:
            return []
        # Claims are made one at a time (a transaction-scoped advisory lock), so the
        # count of each receiver's leased deliveries is right when the next one reads it.
        await self.lock_claims()
        rows = (
            await self._session.execute(
                _CLAIM_DUE,
                {"limit": limit, "per": per_receiver, "lease": timedelta(seconds=lease)},
            )
        ).all()
        return [_outgoing(r) for r in rows]

    async def lock_claims(self) -> None:
        if not self._claims_locked:  # held until the transaction ends
            await self._session.execute(_CLAIM_LOCK)
            self._claims_locked = True

    async def release(self, delivery_ids: Sequence[UUID]) -> None:
        if delivery_ids:
            await self._session.execute(
                update(_D)
                .where(_D.id.in_(delivery_ids), _D.status == DeliveryStatus.DELIVERING.value)
                .values(
                    status=DeliveryStatus.PENDING.value,
                    next_attempt_at=func.now(),
                    lease_until=None,
                    updated_at=func.now(),
                )
            )

    async def record(self, outcome: AttemptRecord) -> None:
        await self.record_all([outcome])

    async def record_all(self, outcomes: Sequence[AttemptRecord]) -> None:
        if not outcomes:
            return
        errors = [o.attempt.error[:ERROR_MAX] if o.attempt.error else None for o in outcomes]
        await self._session.execute(
            _RECORD_ALL,
            {
                "ids": [o.delivery_id for o in outcomes],
                "numbers": [o.attempt.number for o in outcomes],
                "at": [o.attempt.attempted_at for o in outcomes],
                "codes": [o.attempt.status_code for o in outcomes],
                "latencies": [o.attempt.latency_ms for o in outcomes],
                "errors": errors,
                "statuses": [o.status.value for o in outcomes],
                "next": [o.next_attempt_at for o in outcomes],
                "final": [o.status.is_final for o in outcomes],
            },
        )

    async def _attempts(self, ids: Sequence[UUID]) -> dict[UUID, list[DeliveryAttempt]]:
        found: dict[UUID, list[DeliveryAttempt]] = defaultdict(list)
        if not ids:
            return found
        rows = await self._session.scalars(
            select(_A).where(_A.delivery_id.in_(ids)).order_by(_A.delivery_id, _A.number)
        )
        for r in rows:
            found[r.delivery_id].append(
                DeliveryAttempt(r.number, r.attempted_at, r.status_code, r.latency_ms, r.error)
            )
        return found

    async def get(self, delivery_id: UUID, *, owner: str) -> WebhookDelivery | None:
        row = await self._session.scalar(select(_D).where(_D.id == delivery_id, _D.owner == owner))
        if row is None:
            return None
        return _to_delivery(row, (await self._attempts([row.id]))[row.id])

    async def list_for_owner(
        self,
        owner: str,
        *,
        limit: int,
        before: tuple[datetime, UUID] | None,
        task_id: UUID | None = None,
        status: DeliveryStatus | None = None,
    ) -> Sequence[WebhookDelivery]:
        query = select(_D).where(_D.owner == owner)
        if task_id is not None:
            query = query.where(_D.task_id == task_id)
        if status is not None:
            query = query.where(_D.status == status.value)
        if before is not None:
            query = query.where(tuple_(_D.created_at, _D.id) < tuple_(*before))
        query = query.order_by(_D.created_at.desc(), _D.id.desc()).limit(limit)
        rows = list(await self._session.scalars(query))
        attempts = await self._attempts([r.id for r in rows])
        return [_to_delivery(r, attempts[r.id]) for r in rows]

    async def reschedule(self, delivery_id: UUID, *, at: datetime) -> None:
        await self._session.execute(
            update(_D)
            .where(_D.id == delivery_id)
            .values(
                status=DeliveryStatus.PENDING.value,
                next_attempt_at=at,
                round_attempts=0,
                lease_until=None,
                finished_at=None,
                updated_at=func.now(),
            )
        )

    async def fail_unfinished(self, endpoint_id: UUID, *, reason: str, at: datetime) -> None:
        await self._session.execute(
            update(_D)
            .where(_D.endpoint_id == endpoint_id, _D.status.in_(_UNFINISHED))
            .values(
                status=DeliveryStatus.FAILED.value,
                next_attempt_at=None,
                lease_until=None,
                last_error=reason,
                finished_at=at,
                updated_at=func.now(),
            )
        )
