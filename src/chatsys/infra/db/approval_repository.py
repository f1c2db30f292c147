"""The SQL adapter of the ``ApprovalRepository`` port."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import DateTime, String, Table, bindparam, func, inspect, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chatsys.domain.approvals.model import Approval, ApprovalStatus
from chatsys.infra.db.models import ApprovalRow

_PENDING = ApprovalStatus.PENDING.value
_APPROVALS = cast(Table, ApprovalRow.__table__)
# Every task's end runs this (most have no approval at all): prebuilt Core, built and
# given its cache key once; rows come back with the mapped attribute names.
_EXPIRE_PENDING = (
    update(_APPROVALS)
    .where(_APPROVALS.c.task_id == bindparam("b_task_id"), _APPROVALS.c.status == _PENDING)
    .values(
        status=ApprovalStatus.EXPIRED.value,
        reason=bindparam("b_reason", type_=String),
        decided_at=bindparam("b_at", type_=DateTime(timezone=True)),
    )
    .returning(*[a.columns[0].label(a.key) for a in inspect(ApprovalRow).column_attrs])
)


def _to_approval(row: Any) -> Approval:
    """An approval from an ``ApprovalRow``, or a Core row with its attribute names."""
    return Approval(
        id=row.id,
        task_id=row.task_id,
        step=row.step,
        agent=row.agent,
        tool=row.tool,
        arguments=dict(row.arguments),
        arguments_digest=row.arguments_digest,
        status=ApprovalStatus(row.status),
        created_at=row.created_at,
        expires_at=row.expires_at,
        call_id=row.call_id,
        reason=row.reason,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
    )


class SqlApprovalRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, approval: Approval) -> tuple[Approval, bool]:
        inserted = await self._session.scalar(
            insert(ApprovalRow)
            .values(
                id=approval.id,
                task_id=approval.task_id,
                step=approval.step,
                agent=approval.agent,
                tool=approval.tool,
                call_id=approval.call_id,
                arguments=approval.arguments,
                arguments_digest=approval.arguments_digest,
                status=approval.status.value,
                created_at=approval.created_at,
                expires_at=approval.expires_at,
            )
            .on_conflict_do_nothing(index_elements=["task_id", "step", "tool", "arguments_digest"])
            .returning(ApprovalRow.id)
        )
        if inserted is not None:
            return approval, True
        row = await self._session.scalar(
            select(ApprovalRow).where(
                ApprovalRow.task_id == approval.task_id,
                ApprovalRow.step == approval.step,
                ApprovalRow.tool == approval.tool,
                ApprovalRow.arguments_digest == approval.arguments_digest,
            )
        )
        assert row is not None
        return _to_approval(row), False

    async def get(self, approval_id: UUID) -> Approval | None:
        row = await self._session.get(ApprovalRow, approval_id, populate_existing=True)
        return None if row is None else _to_approval(row)

    async def list_for_task(self, task_id: UUID) -> Sequence[Approval]:
        rows = await self._session.scalars(
            select(ApprovalRow)
            .where(ApprovalRow.task_id == task_id)
            .order_by(ApprovalRow.created_at, ApprovalRow.id)
        )
        return [_to_approval(r) for r in rows]

    async def decide(self, approval: Approval) -> Approval | None:
        row = await self._session.scalar(
            update(ApprovalRow)
            .where(ApprovalRow.id == approval.id, ApprovalRow.status == _PENDING)
            .values(
                status=approval.status.value,
                reason=approval.reason,
                decided_by=approval.decided_by,
                decided_at=approval.decided_at,
            )
            .returning(ApprovalRow)
            .execution_options(populate_existing=True)
        )
        return None if row is None else _to_approval(row)

    async def pending_count(self, task_id: UUID) -> int:
        found = await self._session.scalar(
            select(func.count())
            .select_from(ApprovalRow)
            .where(ApprovalRow.task_id == task_id, ApprovalRow.status == _PENDING)
        )
        return int(found or 0)

    async def expire_pending(
        self, task_id: UUID, *, reason: str, at: datetime
    ) -> Sequence[Approval]:
        params = {"b_task_id": task_id, "b_reason": reason, "b_at": at}
        rows = await self._session.execute(_EXPIRE_PENDING, params)
        return [_to_approval(r) for r in rows]
