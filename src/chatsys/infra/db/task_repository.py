"""SQL adapters for tasks, their steps, the event log, the outbox and messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from uuid import UUID, uuid4

from sqlalchemy import (
    String,
    Table,
    and_,
    bindparam,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chatsys.domain.conversations.model import MessageRole
from chatsys.domain.conversations.ports import StoredMessage
from chatsys.domain.nlu.analyzer import Analysis
from chatsys.domain.planning.planner import Plan
from chatsys.domain.shared.errors import DuplicateRequest
from chatsys.domain.tasks.model import (
    StepRecord,
    StepStatus,
    Task,
    TaskError,
    TaskEvent,
    TaskResult,
    TaskStatus,
    Usage,
)
from chatsys.domain.tasks.ports import Lease
from chatsys.infra.db.access_repository import AUDITED_EVENTS, audit_details
from chatsys.infra.db.models import (
    AuditLogRow,
    MessageRow,
    StepRow,
    TaskEventRow,
    TaskOutboxRow,
    TaskRow,
)

# Hot-path statements, built once: executing a prebuilt Core statement with a parameter
# dict skips per-call statement construction and ORM bookkeeping (see bench/ submit).
_TASKS = cast(Table, TaskRow.__table__)
_EVENTS = cast(Table, TaskEventRow.__table__)
_OUTBOX = cast(Table, TaskOutboxRow.__table__)
_AUDIT = cast(Table, AuditLogRow.__table__)
# A runner holds these tasks: it heartbeats them, and they are stale when it stops.
_CLAIMED = (TaskStatus.RUNNING.value, TaskStatus.AWAITING_APPROVAL.value)


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
_ADD_OUTBOX = (
    insert(_OUTBOX)
    .values(task_id=bindparam("b_task_id"), dispatched_at=func.now(), attempts=1)
    .returning(_OUTBOX.c.id)
)


_ACTIVE = (TaskStatus.QUEUED.value, TaskStatus.RUNNING.value, TaskStatus.AWAITING_APPROVAL.value)


def _usage(prompt: int, completion: int, cost: Decimal | float) -> Usage:
    return Usage(int(prompt), int(completion), float(cost))


def _to_step(row: StepRow) -> StepRecord:
    return StepRecord(
        key=row.key,
        agent=row.agent,
        instruction=row.instruction,
        depends_on=tuple(row.depends_on),
        status=StepStatus(row.status),
        output=row.output,
        error=row.error,
        attempt=row.attempt,
        usage=_usage(row.prompt_tokens, row.completion_tokens, row.cost_usd),
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def _to_task(row: TaskRow) -> Task:
    return Task(
        id=row.id,
        owner=row.owner,
        input=row.input,
        status=TaskStatus(row.status),
        created_at=row.created_at,
        conversation_id=row.conversation_id,
        title=row.title,
        analysis=None if row.analysis is None else Analysis.from_dict(row.analysis),
        plan=None if row.plan is None else Plan.from_dict(row.plan),
        result=None if row.result is None else TaskResult.from_dict(row.result),
        error=None if row.error is None else TaskError.from_dict(row.error),
        usage=_usage(row.prompt_tokens, row.completion_tokens, row.cost_usd),
        webhook_url=row.webhook_url,
        webhook_secret=row.webhook_secret,
        idempotency_key=row.idempotency_key,
        request_hash=row.request_hash,
        options=dict(row.options),
        metadata=dict(row.meta),
        attempt=row.attempt,
        started_at=row.started_at,
        finished_at=row.finished_at,
        cancel_requested=row.cancel_requested_at is not None,
        worker_id=row.worker_id,
    )


def _json(value: Analysis | Plan | TaskResult | TaskError | None) -> dict[str, Any] | None:
    return None if value is None else value.as_dict()


def _mutable(task: Task) -> dict[str, Any]:
    return {
        "status": task.status.value,
        "title": task.title,
        "analysis": _json(task.analysis),
        "plan": _json(task.plan),
        "result": _json(task.result),
        "error": _json(task.error),
        "prompt_tokens": task.usage.prompt_tokens,
        "completion_tokens": task.usage.completion_tokens,
        "cost_usd": Decimal(str(task.usage.cost_usd)),
        "attempt": task.attempt,
        "worker_id": task.worker_id,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
    }


class SqlTaskRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, task: Task) -> None:
        # A Core INSERT of the table with a parameter dict: no ORM bookkeeping.
        try:
            await self._insert(task)
        except IntegrityError as exc:
            if "uq_tasks_owner_idempotency_key" in str(exc.orig):
                raise DuplicateRequest(
                    f"Idempotency-Key {task.idempotency_key!r} was just used"
                ) from None
            raise

    async def _insert(self, task: Task) -> None:
        await self._session.execute(
            insert(_TASKS),
            {
                "id": task.id,
                "owner": task.owner,
                "conversation_id": task.conversation_id,
                "input": task.input,
                "webhook_url": task.webhook_url,
                "webhook_secret": task.webhook_secret,
                "idempotency_key": task.idempotency_key,
                "request_hash": task.request_hash,
                "options": task.options,
                "metadata": task.metadata,
                "created_at": task.created_at,
                "updated_at": task.created_at,
                **_mutable(task),
            },
        )

    async def get(self, task_id: UUID, *, owner: str | None) -> Task | None:
        query = select(TaskRow).where(TaskRow.id == task_id)
        if owner is not None:
            query = query.where(TaskRow.owner == owner)
        row = await self._session.scalar(query)
        if row is None:
            return None
        task = _to_task(row)
        task.steps = await self.steps(task_id)
        return task

    async def lock(self, task_id: UUID) -> Task | None:
        row = await self._session.scalar(
            select(TaskRow).where(TaskRow.id == task_id).with_for_update()
        )
        return None if row is None else _to_task(row)

    async def by_idempotency_key(self, owner: str, key: str) -> Task | None:
        row = await self._session.scalar(
            select(TaskRow).where(TaskRow.owner == owner, TaskRow.idempotency_key == key)
        )
        return None if row is None else _to_task(row)

    async def list_for_owner(
        self,
        owner: str | None,
        *,
        limit: int,
        before: tuple[datetime, UUID] | None,
        status: TaskStatus | None = None,
        conversation_id: UUID | None = None,
    ) -> Sequence[Task]:
        query = select(TaskRow)
        if owner is not None:
            query = query.where(TaskRow.owner == owner)
        if status is not None:
            query = query.where(TaskRow.status == status.value)
        if conversation_id is not None:
            query = query.where(TaskRow.conversation_id == conversation_id)
        if before is not None:
            query = query.where(tuple_(TaskRow.created_at, TaskRow.id) < tuple_(*before))
        query = query.order_by(TaskRow.created_at.desc(), TaskRow.id.desc()).limit(limit)
        return [_to_task(r) for r in await self._session.scalars(query)]

    async def update(self, task: Task) -> None:
        await self._session.execute(
            update(TaskRow)
            .where(TaskRow.id == task.id)
            .values(**_mutable(task), updated_at=func.now())
        )

    async def save_steps(self, task_id: UUID, steps: Sequence[StepRecord]) -> None:
        """Insert or update steps; a new step goes after the task's existing ones."""
        existing = await self._session.scalar(
            select(func.count()).select_from(StepRow).where(StepRow.task_id == task_id)
        )
        for index, step in enumerate(steps):
            values = {
                "task_id": task_id,
                "key": step.key,
                "position": int(existing or 0) + index,
                "agent": step.agent,
                "instruction": step.instruction,
                "depends_on": list(step.depends_on),
                "status": step.status.value,
                "output": step.output,
                "error": step.error,
                "attempt": step.attempt,
                "prompt_tokens": step.usage.prompt_tokens,
                "completion_tokens": step.usage.completion_tokens,
                "cost_usd": Decimal(str(step.usage.cost_usd)),
                "started_at": step.started_at,
                "finished_at": step.finished_at,
            }
            statement = insert(StepRow).values(**values)
            fixed = ("task_id", "key", "position")
            updatable = {k: v for k, v in values.items() if k not in fixed}
            await self._session.execute(
                statement.on_conflict_do_update(index_elements=["task_id", "key"], set_=updatable)
            )

    async def steps(self, task_id: UUID) -> list[StepRecord]:
        rows = await self._session.scalars(
            select(StepRow).where(StepRow.task_id == task_id).order_by(StepRow.position)
        )
        return [_to_step(r) for r in rows]

    async def claim(self, task_id: UUID, worker_id: str, *, stale_after: float) -> Task | None:
        lapsed = func.now() - timedelta(seconds=stale_after)
        row = await self._session.scalar(
            update(TaskRow)
            .where(
                TaskRow.id == task_id,
                TaskRow.cancel_requested_at.is_(None),
                or_(
                    TaskRow.status == TaskStatus.QUEUED.value,
                    and_(
                        TaskRow.status.in_(_CLAIMED),
                        or_(TaskRow.heartbeat_at.is_(None), TaskRow.heartbeat_at < lapsed),
                    ),
                ),
            )
            .values(
                status=TaskStatus.RUNNING.value,
                worker_id=worker_id,
                heartbeat_at=func.now(),
                attempt=TaskRow.attempt + 1,
                started_at=func.coalesce(TaskRow.started_at, func.now()),
                updated_at=func.now(),
            )
            .returning(TaskRow)
        )
        return None if row is None else _to_task(row)

    async def heartbeat(self, task_id: UUID, worker_id: str) -> Lease:
        row = await self._session.execute(
            update(TaskRow)
            .where(
                TaskRow.id == task_id,
                TaskRow.worker_id == worker_id,
                TaskRow.status.in_(_CLAIMED),
            )
            .values(heartbeat_at=func.now())
            .returning(TaskRow.cancel_requested_at)
        )
        found = row.first()
        if found is None:
            return Lease(owned=False, cancel_requested=False)
        return Lease(owned=True, cancel_requested=found[0] is not None)

    async def release(self, task_id: UUID, worker_id: str) -> None:
        await self._session.execute(
            update(TaskRow)
            .where(TaskRow.id == task_id, TaskRow.worker_id == worker_id)
            .values(worker_id=None)
        )

    async def request_cancel(self, task_id: UUID) -> None:
        await self._session.execute(
            update(TaskRow)
            .where(TaskRow.id == task_id, TaskRow.cancel_requested_at.is_(None))
            .values(cancel_requested_at=func.now(), updated_at=func.now())
        )

    async def stale(self, *, stale_after: float, limit: int) -> Sequence[UUID]:
        lapsed = func.now() - timedelta(seconds=stale_after)
        rows = await self._session.scalars(
            select(TaskRow.id)
            .where(TaskRow.status.in_(_CLAIMED), TaskRow.heartbeat_at < lapsed)
            .order_by(TaskRow.heartbeat_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(rows)

    async def count_active(self, owner: str) -> int:
        # Serialise this owner's submissions for the rest of the transaction, so two
        # at once cannot both squeeze under the cap.
        await self._session.execute(
            select(func.pg_advisory_xact_lock(func.hashtextextended("tasks:" + owner, 0)))
        )
        count = await self._session.scalar(
            select(func.count())
            .select_from(TaskRow)
            .where(TaskRow.owner == owner, TaskRow.status.in_(_ACTIVE))
        )
        return int(count or 0)

    async def tokens_since(self, owner: str, seconds: float) -> int:
        since = func.now() - timedelta(seconds=seconds)
        total = await self._session.scalar(
            select(func.coalesce(func.sum(StepRow.prompt_tokens + StepRow.completion_tokens), 0))
            .join(TaskRow, TaskRow.id == StepRow.task_id)
            .where(
                TaskRow.owner == owner,
                TaskRow.status.in_(_ACTIVE) | (TaskRow.finished_at > since),
                StepRow.finished_at > since,
            )
        )
        return int(total or 0)

    async def progress(self, task_id: UUID) -> tuple[int, TaskStatus] | None:
        row = (
            await self._session.execute(
                select(TaskRow.last_seq, TaskRow.status).where(TaskRow.id == task_id)
            )
        ).first()
        return None if row is None else (int(row.last_seq), TaskStatus(row.status))


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


class SqlOutbox:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, task_id: UUID) -> int:
        entry_id = await self._session.scalar(_ADD_OUTBOX, {"b_task_id": task_id})
        assert entry_id is not None
        return int(entry_id)

    async def pending(
        self, *, older_than: float, lease: float, limit: int
    ) -> Sequence[tuple[int, UUID]]:
        due = func.now() - timedelta(seconds=older_than)
        expired = func.now() - timedelta(seconds=lease)
        rows = await self._session.execute(
            select(TaskOutboxRow.id, TaskOutboxRow.task_id)
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
        return [(int(r[0]), r[1]) for r in rows]

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


class SqlMessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, message: StoredMessage) -> None:
        await self._session.execute(
            insert(MessageRow).values(
                id=message.id,
                conversation_id=message.conversation_id,
                task_id=message.task_id,
                role=message.role.value,
                agent=message.agent,
                content=message.content,
                created_at=message.created_at,
            )
        )

    @staticmethod
    def _to_message(row: MessageRow) -> StoredMessage:
        return StoredMessage(
            row.id,
            row.conversation_id,
            MessageRole(row.role),
            row.content,
            row.created_at,
            row.task_id,
            row.agent,
        )

    async def page(
        self, conversation_id: UUID, *, limit: int, after: tuple[datetime, UUID] | None
    ) -> Sequence[StoredMessage]:
        query = select(MessageRow).where(MessageRow.conversation_id == conversation_id)
        if after is not None:
            query = query.where(tuple_(MessageRow.created_at, MessageRow.id) > tuple_(*after))
        query = query.order_by(MessageRow.created_at, MessageRow.id).limit(limit)
        return [self._to_message(r) for r in await self._session.scalars(query)]

    async def recent(self, conversation_id: UUID, *, limit: int) -> Sequence[StoredMessage]:
        rows = await self._session.scalars(
            select(MessageRow)
            .where(MessageRow.conversation_id == conversation_id)
            .order_by(MessageRow.created_at.desc(), MessageRow.id.desc())
            .limit(limit)
        )
        return [self._to_message(r) for r in reversed(list(rows))]
