"""The SQL task repository's intent writes, on Postgres: each writes the columns its
change is about and nothing else, so a runner holding an older copy of the task (read
before a parallel step asked for an approval, or before a cancel request) cannot put
an old status or field back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chatsys.domain.nlu.analyzer import RuleBasedAnalyzer
from chatsys.domain.planning.planner import Planner
from chatsys.domain.tasks.model import StepRecord, Task, TaskResult, TaskStatus, Usage
from chatsys.infra.db.engine import create_session_factory
from chatsys.infra.db.unit_of_work import SqlUnitOfWork


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


async def test_each_write_keeps_what_it_is_not_about(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)
    task = Task(uuid4(), "ann", "Write a parser", TaskStatus.QUEUED, datetime.now(UTC))
    async with SqlUnitOfWork(sessions) as uow:
        await uow.tasks.add(task)
        await uow.commit()
    async with SqlUnitOfWork(sessions) as uow:
        runner_copy = await uow.tasks.claim(task.id, "w1", stale_after=10)
        await uow.commit()
    assert runner_copy is not None
    analysis = RuleBasedAnalyzer().analyze(task.input)
    plan = Planner().plan(analysis)
    async with SqlUnitOfWork(sessions) as uow:  # a parallel step waits for an approval
        await uow.tasks.save_analysis(task.id, analysis)
        await uow.tasks.set_status(task.id, TaskStatus.AWAITING_APPROVAL)
        await uow.tasks.request_cancel(task.id)
        await uow.commit()

    async with SqlUnitOfWork(sessions) as uow:  # the runner, with its older copy, plans
        steps = [StepRecord(s.key, s.agent.value, s.instruction, s.depends_on) for s in plan.steps]
        await uow.tasks.save_plan(runner_copy.id, plan, steps)
        await uow.commit()
    async with SqlUnitOfWork(sessions) as uow:
        stored = await uow.tasks.get(task.id, owner=None)
    assert stored is not None
    assert stored.status is TaskStatus.AWAITING_APPROVAL  # not the copy's running
    assert stored.analysis == analysis  # not the copy's None
    assert stored.plan == plan
    assert [s.key for s in stored.steps] == [s.key for s in plan.steps]
    assert (stored.worker_id, stored.attempt, stored.cancel_requested) == ("w1", 1, True)

    runner_copy.result = TaskResult("done", "answer", "assistant")
    runner_copy.usage = Usage(10, 5, 0.01)
    runner_copy.end(TaskStatus.SUCCEEDED, datetime.now(UTC))
    async with SqlUnitOfWork(sessions) as uow:
        await uow.tasks.finish(runner_copy)
        await uow.commit()
    async with SqlUnitOfWork(sessions) as uow:
        ended = await uow.tasks.get(task.id, owner=None)
    assert ended is not None
    assert (ended.status, ended.worker_id, ended.result) == (
        TaskStatus.SUCCEEDED,
        None,
        runner_copy.result,
    )
    assert ended.usage == Usage(10, 5, 0.01)
    assert ended.analysis == analysis  # finishing writes no analysis or plan
    assert ended.plan == plan


async def test_a_heartbeat_waits_for_no_task_row_another_transaction_holds(
    engine: AsyncEngine,
) -> None:
    """All of a runner's runs beat in one statement: a task whose row a slow transaction
    holds must not hold up the others' beats, nor count as lost; another runner's task
    is not the caller's."""
    import asyncio

    from sqlalchemy import text

    sessions = create_session_factory(engine)
    tasks = [Task(uuid4(), "ann", f"task {i}", TaskStatus.QUEUED, datetime.now(UTC))
             for i in range(3)]  # fmt: skip
    async with SqlUnitOfWork(sessions) as uow:
        for task in tasks:
            await uow.tasks.add(task)
        await uow.commit()
    held, free, theirs = (t.id for t in tasks)
    async with SqlUnitOfWork(sessions) as uow:
        for task_id, runner in ((held, "w1"), (free, "w1"), (theirs, "w2")):
            await uow.tasks.claim(task_id, runner, stale_after=10)
        await uow.commit()
    async with engine.connect() as blocker:
        transaction = await blocker.begin()
        await blocker.execute(text("SELECT 1 FROM tasks WHERE id = :id FOR UPDATE"), {"id": held})
        async with SqlUnitOfWork(sessions) as uow:
            leases = await asyncio.wait_for(
                uow.tasks.heartbeat([held, free, theirs], "w1"), timeout=5
            )
            await uow.commit()
        await transaction.rollback()
    assert set(leases) == {held, free}
    assert leases[held].owned
    assert not leases[held].cancel_requested
