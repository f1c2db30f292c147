"""Cancelling a task: queued ends at once, running is flagged for its runner, finished refuses.

However a task ends cancelled (the cancel itself, its runner, the sweeper, a worker
handing it back), its unfinished steps end ``cancelled`` in the same transaction, each
with a ``step.cancelled`` event before ``task.cancelled``; and a cancel that was accepted
is always followed by ``cancelled``, even when it races the runner's end."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest

from chatsys.domain.conversations.use_cases import StartConversation
from chatsys.domain.shared.errors import Conflict, NotFound
from chatsys.domain.tasks.model import EventType, TaskStatus
from chatsys.domain.webhooks.model import DeliveryStatus
from tests.unit.fakes import BlockingLLM, ScriptedLLM
from tests.unit.world import World, until

HOOK = "https://hooks.example.com/in"
AGENTS = ["developer", "reviewer"]  # steps developer_1, reviewer_2, then answer
NEVER = 3600.0  # a heartbeat that never comes: the runner does not notice a cancel


def steps(w: World, task_id: UUID) -> list[tuple[str, str]]:
    """The task's steps as GET shows them: (key, status)."""
    return [(s.key, s.status.value) for s in w.task(task_id).steps]


def step_endings(w: World, task_id: UUID) -> list[tuple[str, dict[str, object]]]:
    """The tail of the event log from the first ``step.cancelled`` on."""
    events = w.db.committed.events[task_id]
    first = next(i for i, e in enumerate(events) if e.type == "step.cancelled")
    return [(e.type, e.data) for e in events[first:]]


async def stop(run: asyncio.Task[TaskStatus | None]) -> None:
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)


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
    assert w.nudge.due_in == [0]  # the webhook slots told after the commit
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
    assert steps(w, task_id) == [
        ("developer_1", "succeeded"),
        ("reviewer_2", "cancelled"),  # it was running
        ("answer", "cancelled"),  # it was pending
    ]
    assert all(s.finished_at is not None for s in task.steps)
    assert step_endings(w, task_id) == [
        ("step.cancelled", {"step": "reviewer_2", "agent": "reviewer", "attempt": 1,
                            "was": "running"}),
        ("step.cancelled", {"step": "answer", "agent": "assistant", "attempt": 0,
                            "was": "pending"}),
        (EventType.TASK_CANCELLED, {"reason": "cancel requested"}),
    ]  # fmt: skip
    llm.release.set()  # the model call it cut short would now answer: nothing changes
    await asyncio.sleep(0)
    assert steps(w, task_id)[1] == ("reviewer_2", "cancelled")


async def test_a_task_handed_back_to_the_queue_and_cancelled_there_ends_its_steps() -> None:
    w = World()
    task_id = await w.submitted(agents=AGENTS)
    llm = BlockingLLM("reviewer_2")
    run = asyncio.create_task(w.runner("a", llm).execute(task_id))
    await until(lambda: llm.calls_for("reviewer_2") == 1)
    await stop(run)  # its worker shuts down: back to the queue, a step left running
    assert w.task(task_id).status is TaskStatus.QUEUED
    assert steps(w, task_id) == [
        ("developer_1", "succeeded"),
        ("reviewer_2", "running"),
        ("answer", "pending"),
    ]

    cancelled = await w.cancel.execute(task_id, owner="ann")

    assert cancelled.status is TaskStatus.CANCELLED
    assert [(s.key, s.status.value) for s in cancelled.steps] == [
        ("developer_1", "succeeded"),
        ("reviewer_2", "cancelled"),
        ("answer", "cancelled"),
    ]  # the answer shows them as they now are
    assert steps(w, task_id) == [(s.key, s.status.value) for s in cancelled.steps]
    assert [t for t, _ in step_endings(w, task_id)] == [
        "step.cancelled",
        "step.cancelled",
        EventType.TASK_CANCELLED,
    ]
    assert w.task(task_id).usage.total_tokens == 15  # what its steps used


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
        assert w.events(task_id)[-2:] == ["step.cancelled", EventType.TASK_CANCELLED]
        assert steps(w, task_id) == [("assistant_1", "cancelled")]
        assert len(w.db.committed.outbox_for(task_id)) == 1
    finally:
        await stop(run)


async def test_a_cancel_requested_task_handed_back_by_its_worker_ends_its_steps() -> None:
    w = World()
    task_id = await w.submitted(agents=AGENTS)
    llm = BlockingLLM("reviewer_2")
    run = asyncio.create_task(w.runner("a", llm, heartbeat_interval=NEVER).execute(task_id))
    await until(lambda: llm.calls_for("reviewer_2") == 1)
    await w.cancel.execute(task_id, owner="ann")  # accepted; the runner has not noticed

    await stop(run)  # its worker shuts down

    assert w.task(task_id).status is TaskStatus.CANCELLED
    assert steps(w, task_id) == [
        ("developer_1", "succeeded"),
        ("reviewer_2", "cancelled"),
        ("answer", "cancelled"),
    ]
    assert w.events(task_id)[-3:] == ["step.cancelled", "step.cancelled", "task.cancelled"]


async def test_a_cancel_accepted_while_the_last_step_runs_ends_the_task_cancelled() -> None:
    """The race: the cancel is accepted (flagged) while the final step runs, and the
    runner reaches its end before any heartbeat noticed the flag."""
    w = World()
    conversation = await StartConversation(w.db.uow, w.clock).execute(
        owner="ann", title="t", metadata=None
    )
    task_id = await w.submitted(agents=AGENTS, conversation_id=conversation.id, webhook_url=HOOK)
    llm = BlockingLLM("answer")
    run = asyncio.create_task(w.runner("a", llm, heartbeat_interval=NEVER).execute(task_id))
    await until(lambda: llm.calls_for("answer") == 1)

    accepted = await w.cancel.execute(task_id, owner="ann")
    assert (accepted.status, accepted.cancel_requested) == (TaskStatus.RUNNING, True)
    llm.release.set()  # the last step completes: the runner goes on to end the task

    assert await asyncio.wait_for(run, 5) is TaskStatus.CANCELLED
    task = w.task(task_id)
    assert task.status is TaskStatus.CANCELLED
    assert task.result is None  # a cancelled task has no answer ...
    assert steps(w, task_id) == [  # ... but the steps keep what they did
        ("developer_1", "succeeded"),
        ("reviewer_2", "succeeded"),
        ("answer", "succeeded"),
    ]
    assert task.steps[-1].output == "assistant did answer"
    assert task.usage.total_tokens == 45  # paid for, so accounted for
    assert "task.succeeded" not in w.events(task_id)
    assert w.events(task_id)[-1] == EventType.TASK_CANCELLED
    assert [m.role.value for m in w.db.committed.messages] == ["user"]  # no answer posted
    [delivery] = w.db.committed.deliveries_for(task_id)
    assert delivery.event_type == EventType.TASK_CANCELLED


async def _cancel_racing_the_end(turns: int) -> tuple[str, TaskStatus | None, TaskStatus]:
    """Release the last step of a run, let ``turns`` event-loop turns pass, cancel.
    Returns the cancel's answer, what the run returned and the task's committed status."""
    w = World()
    task_id = await w.submitted(agents=["assistant"])
    llm = BlockingLLM("assistant_1")
    run = asyncio.create_task(w.runner("a", llm, heartbeat_interval=NEVER).execute(task_id))
    await until(lambda: llm.calls_for("assistant_1") == 1)
    llm.release.set()
    for _ in range(turns):
        await asyncio.sleep(0)
    try:
        await w.cancel.execute(task_id, owner="ann")
        answer = "accepted"
    except Conflict as refused:
        answer = refused.detail
    return answer, await asyncio.wait_for(run, 5), w.task(task_id).status


async def test_a_cancel_racing_the_end_is_refused_or_wins_never_200_then_succeeded() -> None:
    """Every interleaving of a cancel with the runner's end, one event-loop turn apart:
    either the cancel is refused because the task already succeeded, or it is accepted
    and the task ends cancelled."""
    answers = []
    for turns in range(400):
        answer, ran, ended = await _cancel_racing_the_end(turns)
        answers.append(answer)
        if answer == "accepted":
            assert (ran, ended) == (TaskStatus.CANCELLED, TaskStatus.CANCELLED), turns
        else:
            assert answer.endswith("is already succeeded"), answer
            assert (ran, ended) == (TaskStatus.SUCCEEDED, TaskStatus.SUCCEEDED), turns
            break
    assert answers[0] == "accepted"
    assert answers[-1] != "accepted"  # both sides of the race were run
