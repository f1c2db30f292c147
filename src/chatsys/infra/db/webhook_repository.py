"""SQL adapters for webhook endpoints and the webhook delivery outbox."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Interval,
    bindparam,
    delete,
    func,
    insert,
    inspect,
    select,
    text,
    tuple_,
    update,
)
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


# Every task's end asks this: prebuilt Core, built and given its cache key once; rows
# come back with the mapped attribute names.
_SUBSCRIBED = (
    select(*[a.columns[0].label(a.key) for a in inspect(_E).column_attrs])
    .where(
        _E.__table__.c.owner == bindparam("b_owner"),
        _E.__table__.c.disabled_at.is_(None),
        _E.__table__.c.event_types.contains(bindparam("b_event_type")),
    )
    .order_by(_E.__table__.c.created_at, _E.__table__.c.id)
)


def _to_endpoint(row: Any) -> WebhookEndpoint:
    """An endpoint from a ``WebhookEndpointRow``, or a Core row with its attribute names."""
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
        params = {"b_owner": owner, "b_event_type": [event_type]}
        return [_to_endpoint(r) for r in await self._session.execute(_SUBSCRIBED, params)]

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
# Records finished attempts, then claims due deliveries (taking the claims' lock first
# when it claims), in one call: alembic/versions/0012_webhook_record_claim.py has the
# rules of both.
_RECORD_CLAIM = text(
    """
    SELECT * FROM chatsys_webhook_record_claim(
        CAST(:ids AS uuid[]), CAST(:numbers AS integer[]), CAST(:at AS timestamptz[]),
        CAST(:codes AS integer[]), CAST(:latencies AS double precision[]),
        CAST(:errors AS text[]), CAST(:statuses AS text[]), CAST(:next AS timestamptz[]),
        CAST(:final AS boolean[]), CAST(:claim AS integer), CAST(:per AS integer),
        CAST(:lease AS interval), :margin)
    """
).bindparams(bindparam("margin", DUE_MARGIN, type_=Interval()))


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
        return await self.record_and_claim([], limit=limit, per_receiver=per_receiver, lease=lease)

    async def record_and_claim(
        self, outcomes: Sequence[AttemptRecord], *, limit: int, per_receiver: int, lease: float
    ) -> Sequence[OutgoingDelivery]:
        if not outcomes and limit < 1:
            return []
        # Claims are made one at a time (a transaction-scoped advisory lock, taken by the
        # function), so the count of each receiver's leased deliveries is right when the
        # next one reads it.
        errors = [o.attempt.error[:ERROR_MAX] if o.attempt.error else None for o in outcomes]
        rows = (
            await self._session.execute(
                _RECORD_CLAIM,
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
                    "claim": max(limit, 0),
                    "per": per_receiver,
                    "lease": timedelta(seconds=lease),
                },
            )
        ).all()
        if limit > 0:
            self._claims_locked = True
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
        await self.record_and_claim(outcomes, limit=0, per_receiver=1, lease=0.0)

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
