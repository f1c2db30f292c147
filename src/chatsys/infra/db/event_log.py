"""The SQL event log: gapless per-task ``seq``; a batch of events (and their audit rows)
appended in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, cast
from uuid import UUID, uuid4

from sqlalchemy import Integer, String, Table, bindparam, func, literal, select, union_all, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Uuid

from chatsys.domain.tasks.model import TaskEvent
from chatsys.infra.db.access_repository import AUDITED_EVENTS, audit_details
from chatsys.infra.db.models import AuditLogRow, TaskEventRow, TaskRow

_TASKS = cast(Table, TaskRow.__table__)
_EVENTS = cast(Table, TaskEventRow.__table__)
_AUDIT = cast(Table, AuditLogRow.__table__)


@lru_cache(maxsize=64)
def _append_statement(audited: tuple[bool, ...], *, fenced: bool) -> Any:
    """Bump the task's counter by the batch's size (taking its row lock, which serialises
    appends per task and makes ``seq`` gapless), insert the events numbered from it and
    the audit rows of the ``audited`` ones, all in one statement (one round trip). Fenced:
    only while ``b_worker_id`` runs the task. Nothing is written when no row is bumped.
    Built once per shape: executing a prebuilt Core statement with a parameter dict skips
    per-call statement construction and ORM bookkeeping (bench/ step and submit)."""
    n = len(audited)
    where = _TASKS.c.id == bindparam("b_task_id")
    if fenced:
        where = where & (_TASKS.c.worker_id == bindparam("b_worker_id", type_=String))
    bumped = (
        update(_TASKS)
        .where(where)
        .values(last_seq=_TASKS.c.last_seq + n)
        .returning(_TASKS.c.id, _TASKS.c.last_seq, _TASKS.c.conversation_id)
        .cte("bumped")
    )

    def seq(i: int) -> Any:
        return bumped.c.last_seq - literal(n - 1 - i, Integer)

    # ``created_at``: when the row is written (not the transaction's start, ``now()``): a
    # run's end is written after several statements of its transaction, and its event's
    # time is how late a subscriber got it is measured from (bench/ runs).
    rows = [
        select(bumped.c.id, seq(i), bindparam(f"b_type_{i}", type_=String),
               bindparam(f"b_data_{i}", type_=JSONB), func.clock_timestamp())
        for i in range(n)
    ]  # fmt: skip
    inserted = (
        insert(_EVENTS)
        .from_select(
            ["task_id", "seq", "type", "data", "created_at"],
            rows[0] if n == 1 else union_all(*rows),
        )
        .returning(_EVENTS.c.task_id, _EVENTS.c.seq, _EVENTS.c.created_at)
        .cte("inserted")
    )
    audit_rows = [
        select(
            bindparam(f"b_audit_id_{i}", type_=Uuid),
            bindparam(f"b_type_{i}", type_=String),
            bindparam(f"b_type_{i}", type_=String),
            bindparam("b_actor", type_=String),
            bindparam(f"b_agent_{i}", type_=String),
            bumped.c.id,
            func.jsonb_build_object("seq", seq(i)).op("||")(
                bindparam(f"b_details_{i}", type_=JSONB)
            ),
        )
        for i in range(n)
        if audited[i]
    ]
    statement = select(inserted.c.seq, inserted.c.created_at, bumped.c.conversation_id)
    if audit_rows:
        columns = ["event_id", "event_type", "action", "actor", "agent", "task_id", "details"]
        source = audit_rows[0] if len(audit_rows) == 1 else union_all(*audit_rows)
        trail = insert(_AUDIT).from_select(columns, source).cte("audited")
        statement = statement.add_cte(trail)
    return statement.join_from(inserted, bumped, inserted.c.task_id == bumped.c.id).order_by(
        inserted.c.seq
    )


class SqlEventLog:
    """Appends are remembered with their task's conversation, to be published once
    the unit of work commits."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.appended: list[tuple[TaskEvent, UUID | None]] = []

    async def append(
        self, task_id: UUID, type: str, data: dict[str, Any], *, runner: str | None = None
    ) -> TaskEvent:
        return (await self.append_all(task_id, [(type, data)], runner=runner))[0]

    async def append_all(
        self,
        task_id: UUID,
        events: Sequence[tuple[str, dict[str, Any]]],
        *,
        runner: str | None = None,
    ) -> list[TaskEvent]:
        if not events:
            return []
        audited = tuple(kind in AUDITED_EVENTS for kind, _ in events)
        params: dict[str, Any] = {"b_task_id": task_id}
        if any(audited):
            params["b_actor"] = f"worker:{runner}" if runner else "system"
        for i, (kind, data) in enumerate(events):
            params[f"b_type_{i}"] = kind
            params[f"b_data_{i}"] = data
            if audited[i]:
                agent = data.get("agent")
                params[f"b_audit_id_{i}"] = uuid4()
                params[f"b_agent_{i}"] = agent if isinstance(agent, str) else None
                params[f"b_details_{i}"] = audit_details(data)
        if runner is not None:
            params["b_worker_id"] = runner
        statement = _append_statement(audited, fenced=runner is not None)
        rows = (await self._session.execute(statement, params)).all()
        if not rows:
            raise LookupError(f"task {task_id} does not exist or is not run by {runner}")
        conversation = rows[0].conversation_id
        in_conversation = UUID(str(conversation)) if conversation else None
        appended = [
            TaskEvent(task_id, row.seq, kind, data, row.created_at)
            for row, (kind, data) in zip(rows, events, strict=True)
        ]
        self.appended.extend((event, in_conversation) for event in appended)
        return appended

    async def after(self, task_id: UUID, after: int, *, limit: int) -> Sequence[TaskEvent]:
        rows = await self._session.scalars(
            select(TaskEventRow)
            .where(TaskEventRow.task_id == task_id, TaskEventRow.seq > after)
            .order_by(TaskEventRow.seq)
            .limit(limit)
        )
        return [TaskEvent(r.task_id, r.seq, r.type, r.data, r.created_at) for r in rows]
