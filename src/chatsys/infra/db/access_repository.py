"""SQL adapters for API keys and the audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Table, func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatsys.domain.access.model import ApiKey, AuditEntry, Role
from chatsys.domain.tasks.model import EventType, Priority
from chatsys.infra.db.models import ApiKeyRow, AuditLogRow

TOUCH_EVERY = timedelta(seconds=60)
_ADD_AUDIT = insert(cast(Table, AuditLogRow.__table__))

# Task lifecycle events that go to the audit trail (tokens and usage ticks do not).
AUDITED_EVENTS = frozenset(
    {
        EventType.TASK_CREATED,
        EventType.TASK_STARTED,
        EventType.TASK_PLANNED,
        EventType.TASK_REQUEUED,
        EventType.STEP_STARTED,
        EventType.STEP_COMPLETED,
        EventType.STEP_FAILED,
        EventType.STEP_CANCELLED,
        EventType.TOOL_CALL_STARTED,
        EventType.TOOL_CALL_COMPLETED,
        EventType.APPROVAL_REQUESTED,
        EventType.PLAN_DEGRADED,
        EventType.TASK_SUCCEEDED,
        EventType.TASK_FAILED,
        EventType.TASK_CANCELLED,
    }
)
# What of an event's data the audit trail keeps: identifiers and outcomes, never
# texts, tool arguments or results (they may carry secrets or personal data).
_AUDITED_FIELDS = ("step", "attempt", "tool", "call_id", "is_error", "status", "reason", "seq")


def audit_details(data: dict[str, Any]) -> dict[str, Any]:
    details = {k: data[k] for k in _AUDITED_FIELDS if k in data}
    if isinstance(data.get("error"), str):
        details["error"] = data["error"][:300]
    return details


def _to_key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        subject=row.subject,
        prefix=row.prefix,
        secret_hash=row.secret_hash,
        created_at=row.created_at,
        created_by=row.created_by,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        default_priority=Priority(row.default_priority),
    )


class SqlApiKeys:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, key: ApiKey) -> None:
        self._session.add(
            ApiKeyRow(
                id=key.id,
                name=key.name,
                role=key.role.value,
                subject=key.subject,
                prefix=key.prefix,
                secret_hash=key.secret_hash,
                created_by=key.created_by,
                created_at=key.created_at,
                default_priority=key.default_priority.value,
            )
        )
        await self._session.flush()

    async def get(self, key_id: UUID) -> ApiKey | None:
        row = await self._session.get(ApiKeyRow, key_id)
        return None if row is None else _to_key(row)

    async def by_prefix(self, prefix: str) -> ApiKey | None:
        row = await self._session.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix))
        return None if row is None else _to_key(row)

    async def page(self, *, limit: int, before: tuple[datetime, UUID] | None) -> Sequence[ApiKey]:
        query = select(ApiKeyRow)
        if before is not None:
            query = query.where(tuple_(ApiKeyRow.created_at, ApiKeyRow.id) < tuple_(*before))
        query = query.order_by(ApiKeyRow.created_at.desc(), ApiKeyRow.id.desc()).limit(limit)
        return [_to_key(r) for r in await self._session.scalars(query)]

    async def revoke(self, key_id: UUID, at: datetime) -> None:
        await self._session.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    async def set_default_priority(self, key_id: UUID, priority: Priority) -> None:
        await self._session.execute(
            update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(default_priority=priority.value)
        )

    async def touch(self, key_id: UUID, at: datetime) -> None:
        await self._session.execute(
            update(ApiKeyRow)
            .where(
                ApiKeyRow.id == key_id,
                (ApiKeyRow.last_used_at.is_(None)) | (ApiKeyRow.last_used_at < at - TOUCH_EVERY),
            )
            .values(last_used_at=at)
        )

    async def count_active(self) -> int:
        count = await self._session.scalar(
            select(func.count()).select_from(ApiKeyRow).where(ApiKeyRow.revoked_at.is_(None))
        )
        return int(count or 0)


def _to_entry(row: AuditLogRow) -> AuditEntry:
    return AuditEntry(
        action=row.action,
        actor=row.actor or "",
        target=row.target,
        task_id=row.task_id,
        agent=row.agent,
        details=dict(row.details),
        event_id=row.event_id,
        timestamp=row.timestamp,
    )


class SqlAuditLog:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, entry: AuditEntry) -> None:
        # A prebuilt Core INSERT with a parameter dict: no ORM unit-of-work flush (it is on
        # the submit path, bench/ submit).
        await self._session.execute(
            _ADD_AUDIT,
            {
                "event_id": entry.event_id,
                "event_type": entry.action,
                "actor": entry.actor,
                "agent": entry.agent,
                "task_id": entry.task_id,
                "action": entry.action,
                "target": entry.target,
                "details": entry.details,
            },
        )

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
        query = select(AuditLogRow)
        if before is not None:
            query = query.where(
                tuple_(AuditLogRow.timestamp, AuditLogRow.event_id) < tuple_(*before)
            )
        if actor is not None:
            query = query.where(AuditLogRow.actor == actor)
        if action is not None:
            query = query.where(AuditLogRow.action == action)
        if task_id is not None:
            query = query.where(AuditLogRow.task_id == task_id)
        if since is not None:
            query = query.where(AuditLogRow.timestamp >= since)
        if until is not None:
            query = query.where(AuditLogRow.timestamp < until)
        query = query.order_by(AuditLogRow.timestamp.desc(), AuditLogRow.event_id.desc())
        return [_to_entry(r) for r in await self._session.scalars(query.limit(limit))]
