"""The approval gate, through a running task: ask, then approve, deny or let it expire."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from chatsys.domain.approvals.model import Approval, ApprovalStatus, ToolPolicy
from chatsys.domain.llm.ports import Completion, ToolCall, ToolSpec
from chatsys.domain.shared.errors import Conflict, LLMError
from chatsys.domain.tasks.model import EventType, TaskStatus
from tests.unit.fakes import FakeTools, LLMCall, ScriptedLLM, ToolCallMade
from tests.unit.fakes.llm import USAGE
from tests.unit.world import World, until

TOOL = "files__delete"
ARGUMENTS = {"path": "notes.txt"}
TIMEOUT = 600.0


def wants_the_tool(call: LLMCall) -> Completion:
    """Asks to delete a file, then reports what the tool turn said."""
    if call.tool_results:
        return Completion("done: " + call.tool_results[-1], usage=USAGE)
    return Completion("", (ToolCall("c1", TOOL, '{"path": "notes.txt"}'),), usage=USAGE)


class Running:
    """A task whose one step wants an ``ask`` tool, run in the background by ``worker``."""

    def __init__(self, w: World, task_id: UUID, *, worker: str = "a", **options: Any) -> None:
        self.w = w
        self.task_id = task_id
        self.tools = FakeTools(
            ToolSpec(TOOL, "Delete a file", {"type": "object"}, ToolPolicy.ASK),
            result="deleted notes.txt",
        )
        llm = ScriptedLLM(wants_the_tool)
        runner = w.runner(worker, llm, self.tools, approval_timeout=TIMEOUT, **options)
        self.run = asyncio.create_task(runner.execute(task_id))

    async def waiting(self) -> Approval:
        await until(lambda: self.w.task(self.task_id).status is TaskStatus.AWAITING_APPROVAL)
        [approval] = self.w.db.committed.approvals.values()
        return approval

    async def outcome(self) -> str:
        assert await asyncio.wait_for(self.run, 5) is TaskStatus.SUCCEEDED
        result = self.w.task(self.task_id).result
        assert result is not None
        return result.text

    def decision(self) -> Approval:
        return self.w.db.committed.approvals[next(iter(self.w.db.committed.approvals))]


async def started(w: World) -> Running:
    return Running(w, await w.submitted("Delete notes.txt", agents=["operator"]))


async def test_asking_puts_the_task_in_awaiting_approval_with_an_event() -> None:
    w = World()
    running = await started(w)
    approval = await running.waiting()

    assert (approval.status, approval.tool, approval.arguments) == (
        ApprovalStatus.PENDING,
        TOOL,
        ARGUMENTS,
    )
    assert approval.expires_at == approval.created_at + timedelta(seconds=TIMEOUT)
    requested = [
        e for e in w.db.committed.events[running.task_id] if e.type == EventType.APPROVAL_REQUESTED
    ]
    assert [e.data["approval_id"] for e in requested] == [str(approval.id)]
    assert running.tools.calls == []  # nothing ran yet
    assert w.task(running.task_id).worker_id == "a"  # the runner keeps its claim

    await w.decide.execute(running.task_id, approval.id, owner="ann", approve=True)
    await running.outcome()


async def test_an_approved_call_goes_on() -> None:
    w = World()
    running = await started(w)
    approval = await running.waiting()

    decided = await w.decide.execute(
        running.task_id, approval.id, owner="ann", approve=True, decided_by="ana"
    )

    assert decided.status is ApprovalStatus.APPROVED
    assert await running.outcome() == "done: deleted notes.txt"
    assert running.tools.calls == [ToolCallMade("operator", TOOL, ARGUMENTS, approved=True)]
    assert EventType.APPROVAL_DECIDED in w.events(running.task_id)


async def test_a_denied_call_does_not_run_and_the_agent_goes_on_without_it() -> None:
    w = World()
    running = await started(w)
    approval = await running.waiting()

    await w.decide.execute(
        running.task_id, approval.id, owner="ann", approve=False, reason="keep it",
        decided_by="ana",
    )  # fmt: skip

    text = await running.outcome()
    assert "denied by ana: keep it" in text
    assert "go on without its result" in text
    assert running.tools.calls == []


async def test_an_approval_nobody_decides_expires_as_a_denial() -> None:
    w = World()
    running = await started(w)
    approval = await running.waiting()

    w.clock.advance(TIMEOUT + 1)

    text = await running.outcome()
    assert "not approved in time" in text
    assert running.tools.calls == []
    expired = running.decision()
    assert expired.status is ApprovalStatus.EXPIRED
    with pytest.raises(Conflict):  # too late: decided, and its task is finished
        await w.decide.execute(running.task_id, approval.id, owner="ann", approve=True)


async def test_a_decision_after_expires_at_is_refused_even_before_the_runner_notices() -> None:
    w = World()
    running = await started(w)
    approval = await running.waiting()
    w.clock.advance(TIMEOUT)

    with pytest.raises(Conflict, match="expired at"):
        await w.decide.execute(running.task_id, approval.id, owner="ann", approve=True)
    assert "not approved in time" in await running.outcome()
    assert running.tools.calls == []


async def test_cancelling_a_waiting_task_expires_its_approval() -> None:
    w = World()
    running = await started(w)
    approval = await running.waiting()

    await w.cancel.execute(running.task_id, owner="ann")

    assert await asyncio.wait_for(running.run, 5) is TaskStatus.CANCELLED
    expired = running.decision()
    assert (expired.status, expired.reason) == (
        ApprovalStatus.EXPIRED,
        "the task ended (cancelled) before a decision",
    )
    assert running.tools.calls == []
    with pytest.raises(Conflict):
        await w.decide.execute(running.task_id, approval.id, owner="ann", approve=True)


async def test_a_task_resumed_after_its_worker_died_mid_wait_reuses_the_same_approval() -> None:
    w = World()
    task_id = await w.submitted("Delete notes.txt", agents=["operator"])
    dead = Running(w, task_id, heartbeat_interval=3600)  # its heartbeat never comes
    approval = await dead.waiting()
    w.clock.advance(11)
    assert await w.sweeper.execute() == [task_id]
    dead.run.cancel()  # the worker is gone
    await asyncio.gather(dead.run, return_exceptions=True)

    resumed = Running(w, task_id, worker="b")
    assert (await resumed.waiting()).id == approval.id  # asked again: the same approval
    assert len(w.db.committed.approvals) == 1
    assert w.events(task_id).count(EventType.APPROVAL_REQUESTED) == 1

    await w.decide.execute(task_id, approval.id, owner="ann", approve=True)
    assert await resumed.outcome() == "done: deleted notes.txt"
    assert resumed.tools.calls == [ToolCallMade("operator", TOOL, ARGUMENTS, approved=True)]
    assert dead.tools.calls == []


async def test_a_runner_that_lost_the_task_while_waiting_does_not_run_the_approved_call() -> None:
    w = World()
    task_id = await w.submitted("Delete notes.txt", agents=["operator"])
    stalled = Running(w, task_id, heartbeat_interval=3600)  # alive, but its heartbeat lapses
    approval = await stalled.waiting()
    w.clock.advance(11)
    assert await w.sweeper.execute() == [task_id]  # the task is someone else's to run now

    await w.decide.execute(task_id, approval.id, owner="ann", approve=True)

    assert await asyncio.wait_for(stalled.run, 5) is None  # it stops, writing nothing
    assert stalled.tools.calls == []
    resumed = Running(w, task_id, worker="b")
    assert await resumed.outcome() == "done: deleted notes.txt"
    assert len(resumed.tools.calls) == 1  # the approved call ran once, by the new runner


async def test_a_parallel_step_failing_for_good_expires_the_waiting_steps_approval() -> None:
    """Defect 1: one step waits for an approval while a parallel one fails for good. The
    plan degrades to the fallback, which drops the waiting step: its approval expires (it
    must not stay pending for a call nobody will make), and the task runs the fallback."""
    w = World()
    plan = [
        {"key": "ask", "agent": "operator", "instruction": "Delete notes.txt", "depends_on": []},
        {"key": "breaks", "agent": "developer", "instruction": "Write code", "depends_on": []},
        {"key": "answer", "agent": "assistant", "instruction": "Sum up",
         "depends_on": ["ask", "breaks"]},
    ]  # fmt: skip
    task_id = await w.submitted("Delete notes.txt", plan=plan)

    async def reply(call: LLMCall) -> Completion:
        if call.step == "breaks":  # fails once the other step waits for its approval
            await until(lambda: w.task(task_id).status is TaskStatus.AWAITING_APPROVAL)
            raise LLMError("400 context too long", retryable=False)
        if call.step == "ask":
            return wants_the_tool(call)
        return Completion(f"{call.role} did {call.step}", usage=USAGE)

    tools = FakeTools(ToolSpec(TOOL, "Delete a file", {"type": "object"}, ToolPolicy.ASK))
    runner = w.runner("a", ScriptedLLM(reply), tools, approval_timeout=TIMEOUT)

    assert await asyncio.wait_for(runner.execute(task_id), 5) is TaskStatus.SUCCEEDED

    [approval] = w.db.committed.approvals.values()
    assert approval.status is ApprovalStatus.EXPIRED
    assert approval.reason == "the plan was degraded: step ask no longer runs"
    events = w.events(task_id)
    assert events.index(EventType.APPROVAL_DECIDED) < events.index(EventType.PLAN_DEGRADED)
    result = w.task(task_id).result
    assert result is not None
    assert result.step == "fallback"
    assert tools.calls == []
