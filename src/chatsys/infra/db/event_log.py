"""The SQL event log: gapless per-task ``seq``, appended in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast
from uuid import UUID, uuid4

from sqlalchemy import String, Table, bindparam, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from chatsys.domain.tasks.model import TaskEvent
from chatsys.infra.db.access_repository import AUDITED_EVENTS, audit_details
from chatsys.infra.db.models import AuditLogRow, TaskEventRow, TaskRow

# Hot-path statements, built once: executing a prebuilt Core statement with a parameter
# dict skips per-call statement construction and ORM bookkeeping (see bench/ step).
_TASKS = cast(Table, TaskRow.__table__)
_EVENTS = cast(Table, TaskEventRow.__table__)
_AUDIT = cast(Table, AuditLogRow.__table__)


def _append_statement(*, fenced: bool) -> Any:
    """Bump the task's counter (taking its row lock, which serialises appends per task
    and makes ``seq`` gapless) and insert the event with that number, in one statement.
    Fenced: only while ``b_worker_id`` runs the task."""
    where = _TASKS.c.id == bindparam("b_task_id")
    if fenced:
        where = where & (_TASKS.c.worker_id == bindparam("b_worker_id", type_=String))
    bumped = (
        update(_TASKS)
        .where(where)
        .values(last_seq=_TASKS.c.last_seq + 1)
        .returning(_TASKS.c.id, _TASKS.c.last_seq, _TASKS.c.conversation_id)
        .cte("bumped")
    )
    inserted = (
        insert(_EVENTS)
        .from_select(
            ["task_id", "seq", "type", "data"],
            select(
                bumped.c.id,
                bumped.c.last_seq,
                bindparam("b_type", type_=String),
                bindparam("b_data", type_=JSONB),
            ),
        )
        .returning(_EVENTS.c.task_id, _EVENTS.c.seq, _EVENTS.c.created_at)
        .cte("inserted")
    )
    return select(inserted.c.seq, inserted.c.created_at, bumped.c.conversation_id).join_from(
        inserted, bumped, inserted.c.task_id == bumped.c.id
    )


_APPEND_EVENT = _append_statement(fenced=False)
_APPEND_EVENT_FENCED = _append_statement(fenced=True)


class SqlEventLog:
    """Appends are remembered with their task's conversation, to be published once
    the unit of work commits."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.appended: list[tuple[TaskEvent, UUID | None]] = []

    async def append(
        self, task_id: UUID, type: str, data: dict[str, Any], *, runner: str | None = None
    ) -> TaskEvent:
        params = {"b_task_id": task_id, "b_type": type, "b_data": data}
        if runner is None:
            row = (await self._session.execute(_APPEND_EVENT, params)).first()
        else:
            params["b_worker_id"] = runner
            row = (await self._session.execute(_APPEND_EVENT_FENCED, params)).first()
        if row is None:
            raise LookupError(f"task {task_id} does not exist or is not run by {runner}")
        event = TaskEvent(task_id, row.seq, type, data, row.created_at)
        if type in AUDITED_EVENTS:
            await self._session.execute(
                insert(_AUDIT).values(
                    event_id=uuid4(),
                    event_type=type,
                    action=type,
                    actor=f"worker:{runner}" if runner else "system",
                    agent=data.get("agent") if isinstance(data.get("agent"), str) else None,
                    task_id=task_id,
                    details={"seq": row.seq, **audit_details(data)},
                )
            )
        conversation = row.conversation_id
        self.appended.append((event, UUID(str(conversation)) if conversation else None))
        return event

    async def after(self, task_id: UUID, after: int, *, limit: int) -> Sequence[TaskEvent]:
        rows = await self._session.scalars(
            select(TaskEventRow)
            .where(TaskEventRow.task_id == task_id, TaskEventRow.seq > after)
            .order_by(TaskEventRow.seq)
            .limit(limit)
        )
        return [TaskEvent(r.task_id, r.seq, r.type, r.data, r.created_at) for r in rows]
