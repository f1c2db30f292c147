"""The SQL adapter of tasks and their steps: claims, leases and intent writes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, cast
from uuid import UUID

from sqlalchemy import (
    Interval,
    String,
    Table,
    and_,
    any_,
    bindparam,
    func,
    inspect,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Uuid

from chatsys.domain.access.model import AuditEntry
from chatsys.domain.nlu.analyzer import Analysis
from chatsys.domain.planning.planner import Plan
from chatsys.domain.shared.errors import DuplicateRequest
from chatsys.domain.tasks.model import (
    Priority,
    StepRecord,
    StepStatus,
    Task,
    TaskError,
    TaskEvent,
    TaskResult,
    TaskStatus,
    Usage,
)
from chatsys.domain.tasks.ports import Lease, QuietClaim
from chatsys.infra.db.event_log import SqlEventLog
from chatsys.infra.db.models import StepRow, TaskRow
from chatsys.infra.db.step_writes import step_params, unique_by_key, upsert_steps
from chatsys.infra.db.task_submission import submit_params, submit_statement

# The insert is on the submit hot path: a prebuilt Core statement with a parameter dict
# skips per-call statement construction and ORM bookkeeping (see bench/ submit).
_TASKS = cast(Table, TaskRow.__table__)
# A runner holds these tasks: it heartbeats them, and they are stale when it stops.
_CLAIMED = (TaskStatus.RUNNING.value, TaskStatus.AWAITING_APPROVAL.value)
_ACTIVE = (TaskStatus.QUEUED.value, *_CLAIMED)

# A run's own statements (claim, lock, intent writes, heartbeat) are prebuilt Core too:
# built and given their cache key once, executed with a parameter dict; rows come back
# with the mapped attribute names (``meta``), which is all ``_to_task`` reads.
_TASK_COLUMNS = [a.columns[0].label(a.key) for a in inspect(TaskRow).column_attrs]
_ID: Any = bindparam("b_id")
_LOCK = select(*_TASK_COLUMNS).where(_TASKS.c.id == _ID).with_for_update()
_HB = _TASKS.c.heartbeat_at
_LAPSED = func.now() - bindparam("b_stale", type_=Interval())
_CLAIM = (
    update(_TASKS)
    .where(
        _TASKS.c.id == _ID,
        _TASKS.c.cancel_requested_at.is_(None),
        or_(
            _TASKS.c.status == TaskStatus.QUEUED.value,
            and_(
                _TASKS.c.status.in_(_CLAIMED),
                or_(_HB.is_(None), _HB < _LAPSED),
            ),
        ),
    )
    .values(
        status=TaskStatus.RUNNING.value,
        worker_id=bindparam("b_worker", type_=String),
        heartbeat_at=func.now(),
        attempt=_TASKS.c.attempt + 1,
        started_at=func.coalesce(_TASKS.c.started_at, func.now()),
        updated_at=func.now(),
    )
    .returning(*_TASK_COLUMNS)
)
# One runner's runs beat in one statement. A row another transaction holds locked is
# skipped, not waited for (one slow transaction on one task must not hold up every run's
# beat); ``_HELD`` then tells, without waiting either, whether such a task is still ours.
_HELD = select(_TASKS.c.id, _TASKS.c.cancel_requested_at).where(
    _TASKS.c.id == any_(bindparam("b_ids", type_=ARRAY(Uuid()))),
    _TASKS.c.worker_id == bindparam("b_worker", type_=String),
    _TASKS.c.status.in_(_CLAIMED),
)
_HEARTBEAT = (
    update(_TASKS)
    .where(_TASKS.c.id.in_(_HELD.with_only_columns(_TASKS.c.id).with_for_update(skip_locked=True)))
    .values(heartbeat_at=func.now())
    .returning(_TASKS.c.id, _TASKS.c.cancel_requested_at)
)


@lru_cache(maxsize=32)
def _update_statement(attributes: tuple[str, ...]) -> Any:
    """``UPDATE tasks SET <attributes>, updated_at = now() WHERE id = :b_id``, built once
    per set of mapped attributes."""
    columns = inspect(TaskRow).columns
    values: dict[Any, Any] = {
        columns[a]: bindparam(f"b_{a}", type_=columns[a].type) for a in attributes
    }
    values[_TASKS.c.updated_at] = func.now()
    return update(_TASKS).where(_TASKS.c.id == _ID).values(values)


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


def _to_task(row: Any) -> Task:
    """A task from a ``TaskRow``, or a Core row of ``_TASK_COLUMNS`` (same names)."""
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
        priority=Priority(row.priority),
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


def _usage_columns(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cost_usd": Decimal(str(usage.cost_usd)),
    }


def _task_values(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "owner": task.owner,
        "conversation_id": task.conversation_id,
        "input": task.input,
        "webhook_url": task.webhook_url,
        "webhook_secret": task.webhook_secret,
        "priority": task.priority.value,
        "idempotency_key": task.idempotency_key,
        "request_hash": task.request_hash,
        "options": task.options,
        "metadata": task.metadata,
        "created_at": task.created_at,
        "updated_at": task.created_at,
        "status": task.status.value,
        "title": task.title,
        "analysis": _json(task.analysis),
        "plan": _json(task.plan),
        "result": _json(task.result),
        "error": _json(task.error),
        **_usage_columns(task.usage),
        "attempt": task.attempt,
        "worker_id": task.worker_id,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
    }


class SqlTaskRepository:
    def __init__(self, session: AsyncSession, events: SqlEventLog | None = None) -> None:
        self._session = session
        self._events = events

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
        await self._session.execute(insert(_TASKS), _task_values(task))

    async def add_queued(
        self, task: Task, event: tuple[str, dict[str, Any]], audit: AuditEntry
    ) -> int:
        kind, data = event
        params = submit_params(_task_values(task), kind, data, audit)
        try:
            row = (await self._session.execute(submit_statement(kind), params)).one()
        except IntegrityError as exc:
            if "uq_tasks_owner_idempotency_key" in str(exc.orig):
                raise DuplicateRequest(
                    f"Idempotency-Key {task.idempotency_key!r} was just used"
                ) from None
            raise
        if self._events is not None:  # published once the unit of work commits
            self._events.appended.append(
                (TaskEvent(task.id, 1, kind, data, row.created_at), task.conversation_id)
            )
        return int(row.id)

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
        row = (await self._session.execute(_LOCK, {"b_id": task_id})).first()
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

    async def _write(self, task_id: UUID, **values: Any) -> None:
        params = {f"b_{a}": v for a, v in values.items()}
        params["b_id"] = task_id
        await self._session.execute(_update_statement(tuple(values)), params)

    async def set_status(self, task_id: UUID, status: TaskStatus) -> None:
        await self._write(task_id, status=status.value)

    async def save_analysis(self, task_id: UUID, analysis: Analysis) -> None:
        await self._write(task_id, analysis=analysis.as_dict())

    async def save_plan(
        self,
        task_id: UUID,
        plan: Plan,
        steps: Sequence[StepRecord],
        *,
        analysis: Analysis | None = None,
    ) -> None:
        if analysis is None:
            await self._write(task_id, plan=plan.as_dict())
        else:
            await self._write(task_id, plan=plan.as_dict(), analysis=analysis.as_dict())
        await self.save_steps(task_id, steps)

    async def requeue(self, task: Task) -> None:
        await self._write(
            task.id, status=task.status.value, worker_id=task.worker_id, attempt=task.attempt
        )

    async def finish(self, task: Task) -> None:
        await self._write(
            task.id,
            status=task.status.value,
            worker_id=task.worker_id,
            finished_at=task.finished_at,
            result=_json(task.result),
            error=_json(task.error),
            **_usage_columns(task.usage),
        )

    async def save_steps(self, task_id: UUID, steps: Sequence[StepRecord]) -> None:
        """Insert or update steps; a new step goes after the task's existing ones."""
        if steps:
            batch = unique_by_key(steps)
            await self._session.execute(upsert_steps(len(batch)), step_params(task_id, batch))

    async def steps(self, task_id: UUID) -> list[StepRecord]:
        rows = await self._session.scalars(
            select(StepRow).where(StepRow.task_id == task_id).order_by(StepRow.position)
        )
        return [_to_step(r) for r in rows]

    async def claim(self, task_id: UUID, worker_id: str, *, stale_after: float) -> Task | None:
        params = {"b_id": task_id, "b_worker": worker_id, "b_stale": timedelta(seconds=stale_after)}
        row = (await self._session.execute(_CLAIM, params)).first()
        return None if row is None else _to_task(row)

    async def heartbeat(self, task_ids: Sequence[UUID], worker_id: str) -> dict[UUID, Lease]:
        params = {"b_ids": list(task_ids), "b_worker": worker_id}
        rows = list(await self._session.execute(_HEARTBEAT, params))
        if len(rows) < len(params["b_ids"]):  # lost, ended, or locked just now: which?
            missing = {"b_ids": sorted(set(task_ids) - {r.id for r in rows}), "b_worker": worker_id}
            rows += await self._session.execute(_HELD, missing)
        return {r.id: Lease(owned=True, cancel_requested=r.cancel_requested_at is not None)
                for r in rows}  # fmt: skip

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

    async def quiet(
        self, *, quiet_for: float, stale_after: float, limit: int
    ) -> Sequence[QuietClaim]:
        quiet = func.now() - timedelta(seconds=quiet_for)
        lapsed = func.now() - timedelta(seconds=stale_after)
        rows = await self._session.execute(
            select(TaskRow.id, TaskRow.worker_id, (TaskRow.heartbeat_at < lapsed).label("lapsed"))
            .where(TaskRow.status.in_(_CLAIMED), TaskRow.heartbeat_at < quiet)
            .order_by(TaskRow.heartbeat_at)
            .limit(limit)
            .with_for_update(of=TaskRow, skip_locked=True)
        )
        return [QuietClaim(r.id, r.worker_id, bool(r.lapsed)) for r in rows]

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
