"""Cancelling a task: queued ends at once, running is flagged for its runner, finished refuses."""

from __future__ import annotations

import asyncio

import pytest

from chatsys.domain.shared.errors import Conflict, NotFound
from chatsys.domain.tasks.model import EventType, TaskStatus
from chatsys.domain.webhooks.model import DeliveryStatus
from tests.unit.fakes import BlockingLLM, ScriptedLLM
from tests.unit.world import World, until

HOOK = "https://hooks.example.com/in"


async def test_a_queued_task_ends_cancelled_with_its_terminal_event_and_webhook() -> None:
    w = World()
    task_id = await w.submitted(webhook_url=HOOK)

    cancelled = await w.cancel.execute(task_id, owner="ann", actor="key:1")

    assert cancelled.status is TaskStatus.CANCELLED
    task = w.task(task_id)
    assert task.status is TaskStatus.CANCELLED
    assert task.finished_at is not None
    last = w.db.committed.events[task_id][-1]
    assert (last.type, last.data) == (
        EventType.TASK_CANCELLED,
        {"reason": "cancelled before it started"},
    )
    [delivery] = w.db.committed.deliveries_for(task_id)
    assert (delivery.url, delivery.event_type, delivery.status) == (
        HOOK,
        EventType.TASK_CANCELLED,
        DeliveryStatus.PENDING,
    )
    assert w.webhook_jobs.jobs == [(delivery.id, 0, 0)]  # dispatched after the commit
    assert w.db.committed.audit[-1].action == "task.cancel"

    # Its job may still be in the queue: no runner takes it now.
    llm = ScriptedLLM()
    assert await w.runner("a", llm).execute(task_id) is None
    assert llm.calls == []


async def test_a_running_task_is_flagged_and_its_runner_ends_it_cancelled() -> None:
    w = World()
    task_id = await w.submitted(agents=["developer", "reviewer"])
    llm = BlockingLLM("reviewer_2")
    run = asyncio.create_task(w.runner("a", llm).execute(task_id))
    await until(lambda: llm.calls_for("reviewer_2") == 1)

    flagged = await w.cancel.execute(task_id, owner="ann")

    assert (flagged.status, flagged.cancel_requested) == (TaskStatus.RUNNING, True)
    assert EventType.TASK_CANCELLED not in w.events(task_id)
    assert await asyncio.wait_for(run, 5) is TaskStatus.CANCELLED  # at its next heartbeat
    task = w.task(task_id)
    assert task.status is TaskStatus.CANCELLED
    assert w.events(task_id)[-1] == EventType.TASK_CANCELLED
    assert task.usage.total_tokens == 15  # the step it finished is accounted for
    assert task.result is None


async def test_a_finished_task_cannot_be_cancelled() -> None:
    w = World()
    task_id = await w.submitted(agents=["assistant"])
    assert await w.runner("a").execute(task_id) is TaskStatus.SUCCEEDED
    seen = w.events(task_id)

    with pytest.raises(Conflict, match="already succeeded"):
        await w.cancel.execute(task_id, owner="ann")

    assert w.task(task_id).status is TaskStatus.SUCCEEDED
    assert w.events(task_id) == seen


async def test_someone_elses_task_is_not_found_but_an_admin_may_cancel_it() -> None:
    w = World()
    task_id = await w.submitted()
    with pytest.raises(NotFound):
        await w.cancel.execute(task_id, owner="bob")
    assert w.task(task_id).status is TaskStatus.QUEUED

    await w.cancel.execute(task_id, owner=None)
    assert w.task(task_id).status is TaskStatus.CANCELLED


async def test_a_cancel_requested_task_whose_runner_died_is_ended_by_the_sweeper() -> None:
    w = World()
    task_id = await w.submitted(agents=["assistant"])
    llm = BlockingLLM("assistant_1")
    run = asyncio.create_task(w.runner("a", llm, heartbeat_interval=3600).execute(task_id))
    await until(lambda: llm.calls_for("assistant_1") == 1)
    try:
        await w.cancel.execute(task_id, owner="ann")
        w.clock.advance(11)
        assert await w.sweeper.execute() == []  # nothing to re-queue: it is finished instead
        assert w.task(task_id).status is TaskStatus.CANCELLED
        assert w.events(task_id)[-1] == EventType.TASK_CANCELLED
        assert len(w.db.committed.outbox_for(task_id)) == 1
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
