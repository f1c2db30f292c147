"""SQL adapters for webhook endpoints and the webhook delivery outbox."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import and_, case, delete, func, insert, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatsys.domain.webhooks.model import (
    DeliveryAttempt,
    DeliveryStatus,
    OutgoingDelivery,
    WebhookDelivery,
    WebhookEndpoint,
)
from chatsys.domain.webhooks.ports import AttemptRecord
from chatsys.infra.db.models import (
    TaskRow,
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

    async def admit(
        self, endpoint_id: UUID, *, at: datetime, probe_lease: float
    ) -> datetime | None:
        # A paused endpoint whose time has come lets one attempt through (the probe): the
        # row's update makes it one, the others see the pause pushed on.
        paused = await self._session.scalar(
            select(_E.paused_until).where(_E.id == endpoint_id).with_for_update()
        )
        if paused is None:
            return None
        if paused > at:
            return paused
        await self._session.execute(
            update(_E)
            .where(_E.id == endpoint_id)
            .values(paused_until=at + timedelta(seconds=probe_lease))
        )
        return None

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


class SqlWebhookDeliveries:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, delivery: WebhookDelivery) -> None:
        # Stamped as dispatched: the first attempt's job follows the commit.
        await self._session.execute(
            insert(_D).values(
                id=delivery.id,
                webhook_id=delivery.webhook_id,
                owner=delivery.owner,
                task_id=delivery.task_id,
                endpoint_id=delivery.endpoint_id,
                event_type=delivery.event_type,
                url=delivery.url,
                body=delivery.body,
                status=delivery.status.value,
                next_attempt_at=delivery.next_attempt_at,
                dispatched_at=func.now(),
                created_at=delivery.created_at,
                updated_at=delivery.created_at,
            )
        )

    async def claim(self, delivery_id: UUID, *, lease: float) -> OutgoingDelivery | None:
        now = func.now()
        claimed = (
            await self._session.execute(
                update(_D)
                .where(
                    _D.id == delivery_id,
                    or_(
                        and_(
                            _D.status == DeliveryStatus.PENDING.value,
                            _D.next_attempt_at <= now + DUE_MARGIN,
                        ),
                        and_(_D.status == DeliveryStatus.DELIVERING.value, _D.lease_until < now),
                    ),
                )
                .values(
                    status=DeliveryStatus.DELIVERING.value,
                    lease_until=now + timedelta(seconds=lease),
                    updated_at=now,
                )
                .returning(
                    _D.id,
                    _D.webhook_id,
                    _D.url,
                    _D.body,
                    _D.endpoint_id,
                    _D.task_id,
                    _D.attempt_count,
                    _D.round_attempts,
                )
            )
        ).first()
        if claimed is None:
            return None
        secrets, refusal = await self._secrets(claimed.endpoint_id, claimed.task_id)
        return OutgoingDelivery(
            id=claimed.id,
            webhook_id=claimed.webhook_id,
            url=claimed.url,
            body=claimed.body,
            endpoint_id=claimed.endpoint_id,
            attempt_count=claimed.attempt_count,
            round_attempts=claimed.round_attempts,
            secrets=secrets,
            refusal=refusal,
        )

    async def _secrets(
        self, endpoint_id: UUID | None, task_id: UUID
    ) -> tuple[tuple[str, ...], str | None]:
        if endpoint_id is None:
            secret = await self._session.scalar(
                select(TaskRow.webhook_secret).where(TaskRow.id == task_id)
            )
            if not secret:
                return (), "the task has no webhook signing secret"
            return (secret,), None
        still_valid = case(
            (_E.previous_secret_expires_at > func.now(), _E.previous_secret), else_=None
        )
        row = (
            await self._session.execute(
                select(_E.secret, still_valid, _E.disabled_at, _E.disabled_reason).where(
                    _E.id == endpoint_id
                )
            )
        ).first()
        if row is None:
            return (), "the webhook endpoint was deleted"
        if row[2] is not None:
            return (), f"the webhook endpoint is disabled: {row[3]}"
        return (row[0], row[1]) if row[1] else (row[0],), None

    async def record(self, outcome: AttemptRecord) -> None:
        attempt = outcome.attempt
        error = attempt.error[:ERROR_MAX] if attempt.error else None
        await self._session.execute(
            insert(_A).values(
                delivery_id=outcome.delivery_id,
                number=attempt.number,
                attempted_at=attempt.attempted_at,
                status_code=attempt.status_code,
                latency_ms=attempt.latency_ms,
                error=error,
            )
        )
        final = outcome.status.is_final
        await self._session.execute(
            update(_D)
            .where(_D.id == outcome.delivery_id)
            .values(
                status=outcome.status.value,
                attempt_count=attempt.number,
                round_attempts=_D.round_attempts + 1,
                next_attempt_at=outcome.next_attempt_at,
                lease_until=None,
                # A retry's job is enqueued right after this commit.
                dispatched_at=None if final else func.now(),
                last_status_code=attempt.status_code,
                last_error=error,
                finished_at=attempt.attempted_at if final else None,
                updated_at=func.now(),
            )
        )

    async def due(
        self, *, grace: float, redispatch_after: float, limit: int
    ) -> Sequence[tuple[UUID, int]]:
        now = func.now()
        not_recently_sent = or_(
            _D.dispatched_at.is_(None),
            _D.dispatched_at < now - timedelta(seconds=redispatch_after),
        )
        rows = (
            await self._session.execute(
                select(_D.id, _D.attempt_count)
                .where(
                    not_recently_sent,
                    or_(
                        and_(
                            _D.status == DeliveryStatus.PENDING.value,
                            _D.next_attempt_at <= now - timedelta(seconds=grace),
                        ),
                        and_(_D.status == DeliveryStatus.DELIVERING.value, _D.lease_until < now),
                    ),
                )
                .order_by(_D.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        found = [(r[0], int(r[1])) for r in rows]
        if found:
            await self._session.execute(
                update(_D).where(_D.id.in_([i for i, _ in found])).values(dispatched_at=now)
            )
        return found

    async def mark_undispatched(self, delivery_ids: Sequence[UUID]) -> None:
        if delivery_ids:
            await self._session.execute(
                update(_D).where(_D.id.in_(delivery_ids)).values(dispatched_at=None)
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
                dispatched_at=func.now(),
                updated_at=func.now(),
            )
        )

    async def postpone(self, delivery_id: UUID, *, at: datetime) -> None:
        await self._session.execute(
            update(_D)
            .where(_D.id == delivery_id, _D.status == DeliveryStatus.DELIVERING.value)
            .values(
                status=DeliveryStatus.PENDING.value,
                next_attempt_at=at,
                lease_until=None,
                dispatched_at=func.now(),
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
