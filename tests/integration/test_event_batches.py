"""A batch of events in one write, on Postgres: consecutive gapless ``seq`` after the
events already there, an audit row for each lifecycle event (with its ``seq``) and none
for token events, and nothing at all when the fence refuses the runner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chatsys.domain.access.model import AuditEntry
from chatsys.domain.tasks.model import EventType, StepRecord, StepStatus, Task, TaskStatus
from chatsys.infra.db.engine import create_session_factory
from chatsys.infra.db.unit_of_work import SqlUnitOfWork


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


async def test_a_batch_is_numbered_audited_and_fenced(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)
    task = Task(uuid4(), "ann", "Write a parser", TaskStatus.QUEUED, datetime.now(UTC))
    async with SqlUnitOfWork(sessions) as uow:
        await uow.tasks.add(task)
        await uow.events.append(task.id, EventType.TASK_CREATED, {"status": "queued"})
        await uow.tasks.claim(task.id, "w1", stale_after=10)
        await uow.commit()
    batch: list[tuple[str, dict[str, Any]]] = [
        (EventType.MESSAGE_DELTA, {"step": "s1", "text": "hel"}),
        (EventType.STEP_COMPLETED, {"step": "s1", "agent": "developer", "attempt": 2}),
        (EventType.USAGE_UPDATED, {"usage": {"prompt_tokens": 3}}),
        (EventType.STEP_STARTED, {"step": "s2", "agent": "tester", "attempt": 1}),
    ]
    async with SqlUnitOfWork(sessions) as uow:
        appended = await uow.events.append_all(task.id, batch, runner="w1")
        await uow.commit()
    assert [(e.seq, e.type) for e in appended] == [(2 + i, k) for i, (k, _) in enumerate(batch)]

    async with SqlUnitOfWork(sessions) as uow:  # another runner: nothing is written
        with pytest.raises(LookupError):
            await uow.events.append_all(task.id, batch, runner="w2")
        await uow.commit()
    async with SqlUnitOfWork(sessions) as uow:
        stored = await uow.events.after(task.id, 0, limit=100)
        trail = await uow.audit.page(
            limit=100, before=None, actor=None, action=None, task_id=task.id, since=None, until=None
        )
    audit = sorted(trail, key=lambda a: a.details["seq"])
    assert [(e.seq, e.type, e.data) for e in stored] == [
        (1, EventType.TASK_CREATED, {"status": "queued"}),
        *[(2 + i, kind, data) for i, (kind, data) in enumerate(batch)],
    ]
    assert [(a.action, a.actor, a.agent, a.details) for a in audit] == [
        (EventType.TASK_CREATED, "system", None, {"seq": 1, "status": "queued"}),
        (
            EventType.STEP_COMPLETED,
            "worker:w1",
            "developer",
            {"seq": 3, "step": "s1", "attempt": 2},
        ),
        (EventType.STEP_STARTED, "worker:w1", "tester", {"seq": 5, "step": "s2", "attempt": 1}),
    ]


async def test_steps_are_upserted_in_one_write_in_plan_order(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)
    task = Task(uuid4(), "ann", "Write a parser", TaskStatus.QUEUED, datetime.now(UTC))
    first = StepRecord("a", "developer", "write it", ())
    async with SqlUnitOfWork(sessions) as uow:
        await uow.tasks.add(task)
        await uow.tasks.save_steps(task.id, [first])
        await uow.commit()
    first.status = StepStatus.SUCCEEDED
    first.output = "done"
    later = [StepRecord("b", "tester", "test it", ("a",)), StepRecord("c", "reviewer", "x", ())]
    async with SqlUnitOfWork(sessions) as uow:
        await uow.tasks.save_steps(task.id, [*later, first])
        await uow.commit()
    async with SqlUnitOfWork(sessions) as uow:
        steps = await uow.tasks.steps(task.id)
    assert [(s.key, s.status, s.output, s.depends_on) for s in steps] == [
        ("a", StepStatus.SUCCEEDED, "done", ()),
        ("b", StepStatus.PENDING, None, ("a",)),
        ("c", StepStatus.PENDING, None, ()),
    ]


async def test_a_submission_is_one_write_the_log_goes_on_from(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)
    task = Task(uuid4(), "ann", "Write a parser", TaskStatus.QUEUED, datetime.now(UTC))
    audit = AuditEntry("task.create", "user:ann", target=f"task:{task.id}", task_id=task.id)
    created = {"status": "queued", "conversation_id": None}
    async with SqlUnitOfWork(sessions) as uow:
        entry = await uow.tasks.add_queued(task, (EventType.TASK_CREATED, created), audit)
        await uow.commit()
    async with SqlUnitOfWork(sessions) as uow:
        pending = await uow.outbox.pending(older_than=0, lease=0, limit=100)
        later = await uow.events.append(task.id, EventType.TASK_STARTED, {"attempt": 1})
        await uow.commit()
    async with SqlUnitOfWork(sessions) as uow:
        stored = await uow.tasks.get(task.id, owner="ann")
        events = await uow.events.after(task.id, 0, limit=10)
        trail = await uow.audit.page(
            limit=100, before=None, actor=None, action=None, task_id=task.id, since=None, until=None
        )
    assert stored is not None
    assert stored.status is TaskStatus.QUEUED
    assert (entry, task.id) in [(e, t) for e, t, _ in pending]  # stamped, lease 0: due again
    assert [(e.seq, e.type, e.data) for e in events] == [
        (1, EventType.TASK_CREATED, created),
        (2, EventType.TASK_STARTED, {"attempt": 1}),
    ]
    assert later.seq == 2
    assert sorted((a.action, a.actor, a.target, a.details.get("seq")) for a in trail) == [
        ("task.create", "user:ann", f"task:{task.id}", None),
        (EventType.TASK_CREATED, "system", None, 1),
        (EventType.TASK_STARTED, "system", None, 2),
    ]
