"""The SQL outbox of run jobs: written with the task, dispatched after the commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import cast
from uuid import UUID

from sqlalchemy import Table, and_, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chatsys.domain.tasks.model import Priority, TaskStatus
from chatsys.infra.db.models import TaskOutboxRow, TaskRow

_OUTBOX = cast(Table, TaskOutboxRow.__table__)
_ADD_OUTBOX = (
    insert(_OUTBOX)
    .values(task_id=bindparam("b_task_id"), dispatched_at=func.now(), attempts=1)
    .returning(_OUTBOX.c.id)
)


class SqlOutbox:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, task_id: UUID) -> int:
        entry_id = await self._session.scalar(_ADD_OUTBOX, {"b_task_id": task_id})
        assert entry_id is not None
        return int(entry_id)

    async def pending(
        self, *, older_than: float, lease: float, limit: int
    ) -> Sequence[tuple[int, UUID, Priority]]:
        due = func.now() - timedelta(seconds=older_than)
        expired = func.now() - timedelta(seconds=lease)
        rows = await self._session.execute(
            select(TaskOutboxRow.id, TaskOutboxRow.task_id, TaskRow.priority)
            .join(TaskRow, TaskRow.id == TaskOutboxRow.task_id)
            .where(
                or_(
                    and_(TaskOutboxRow.dispatched_at.is_(None), TaskOutboxRow.created_at <= due),
                    and_(
                        TaskOutboxRow.dispatched_at < expired,
                        TaskRow.status == TaskStatus.QUEUED.value,
                    ),
                )
            )
            .order_by(TaskOutboxRow.id)
            .limit(limit)
            .with_for_update(of=TaskOutboxRow, skip_locked=True)
        )
        return [(int(r[0]), r[1], Priority(r[2])) for r in rows]

    async def mark_dispatched(self, ids: Sequence[int]) -> None:
        if ids:
            await self._session.execute(
                update(TaskOutboxRow)
                .where(TaskOutboxRow.id.in_(ids))
                .values(dispatched_at=func.now(), attempts=TaskOutboxRow.attempts + 1)
            )

    async def mark_undispatched(self, ids: Sequence[int]) -> None:
        if ids:
            await self._session.execute(
                update(TaskOutboxRow).where(TaskOutboxRow.id.in_(ids)).values(dispatched_at=None)
            )
