"""Running a task: the claim, the lease, the sweeper, resuming after completed steps."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import pytest

from chatsys.domain.llm.ports import Completion
from chatsys.domain.nlu import Analysis
from chatsys.domain.nlu.llm_analyzer import RulesTaskAnalyzer
from chatsys.domain.shared.errors import LLMError
from chatsys.domain.tasks.model import EventType, StepStatus, TaskStatus, Usage
from tests.unit.fakes import BlockingLLM, LLMCall, ScriptedLLM
from tests.unit.world import STALE_AFTER, World, until

AGENTS = ["developer", "reviewer"]  # steps developer_1, reviewer_2, then answer
NEVER = 3600.0  # a heartbeat interval for a runner that is about to "die"


async def started(
    w: World, llm: BlockingLLM, task_id: UUID, **options: Any
) -> asyncio.Task[TaskStatus | None]:
    """Worker ``a`` runs the task until it reaches the blocked step."""
    run = asyncio.create_task(w.runner("a", llm, **options).execute(task_id))
    await until(lambda: llm.calls_for(llm.held) == 1)
    return run


async def stop(run: asyncio.Task[TaskStatus | None]) -> None:
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)


async def test_a_queued_task_is_claimed_and_ends_succeeded_with_its_result() -> None:
    w = World()
    task_id = await w.submitted(agents=AGENTS)
    llm = ScriptedLLM()

    assert await w.runner("a", llm).execute(task_id) is TaskStatus.SUCCEEDED

    task = w.task(task_id)
    assert task.status is TaskStatus.SUCCEEDED
    assert task.result is not None
    assert task.result.as_dict() == {
        "text": "assistant did answer",
        "step": "answer",
        "agent": "assistant",
    }
    assert [(s.key, s.status) for s in task.steps] == [
        ("developer_1", StepStatus.SUCCEEDED),
        ("reviewer_2", StepStatus.SUCCEEDED),
        ("answer", StepStatus.SUCCEEDED),
    ]
    assert task.usage == Usage(30, 15, 0.003)
    assert (task.attempt, task.worker_id) == (1, None)
    assert task.finished_at is not None
    events = w.db.committed.events[task_id]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))  # gapless
    assert [e.type for e in events][:4] == [
        EventType.TASK_CREATED,
        EventType.TASK_STARTED,
        EventType.TASK_ANALYZED,
        EventType.TASK_PLANNED,
    ]
    assert events[-1].type == EventType.TASK_SUCCEEDED
    assert w.events(task_id).count(EventType.STEP_COMPLETED) == 3
    assert [c.step for c in llm.calls] == ["developer_1", "reviewer_2", "answer"]
    # the reviewer built on the developer's output
    assert "developer did developer_1" in llm.calls[1].messages[-1]["content"]


async def test_a_second_runner_cannot_claim_a_task_whose_lease_is_live() -> None:
    w = World()
    task_id = await w.submitted(agents=AGENTS)
    llm = BlockingLLM("developer_1")
    run = await started(w, llm, task_id)

    other = ScriptedLLM()
    assert await w.runner("b", other).execute(task_id) is None
    assert other.calls == []
    assert w.task(task_id).worker_id == "a"
    assert w.events(task_id).count(EventType.TASK_STARTED) == 1

    llm.release.set()
    assert await run is TaskStatus.SUCCEEDED


async def test_after_the_lease_lapses_the_sweeper_requeues_the_task() -> None:
    w = World()
    task_id = await w.submitted(agents=AGENTS)
    run = await started(w, BlockingLLM("developer_1"), task_id, heartbeat_interval=NEVER)
    try:
        w.clock.advance(STALE_AFTER - 1)
        assert await w.sweeper.execute() == []  # not lapsed yet
        assert w.task(task_id).status is TaskStatus.RUNNING

        w.clock.advance(2)
        assert await w.sweeper.execute() == [task_id]
        task = w.task(task_id)
        assert (task.status, task.worker_id) == (TaskStatus.QUEUED, None)
        assert w.events(task_id)[-1] == EventType.TASK_REQUEUED
        entries = w.db.committed.outbox_for(task_id)
        assert len(entries) == 2
        assert w.jobs.runs[-1] == (task_id, entries[-1].id)  # its job is sent again
    finally:
        await stop(run)


async def test_a_task_whose_heartbeat_lapsed_can_be_claimed_by_another_runner() -> None:
    w = World()
    task_id = await w.submitted(agents=["assistant"])
    run = await started(w, BlockingLLM("assistant_1"), task_id, heartbeat_interval=NEVER)
    try:
        w.clock.advance(STALE_AFTER + 1)
        assert await w.runner("b").execute(task_id) is TaskStatus.SUCCEEDED
        assert w.task(task_id).attempt == 2
    finally:
        await stop(run)


async def test_a_resumed_run_skips_completed_steps_and_the_old_runner_writes_nothing() -> None:
    w = World()
    task_id = await w.submitted(agents=AGENTS)
    first = BlockingLLM("reviewer_2")  # developer_1 completes, then worker a "dies"
    run = await started(w, first, task_id, heartbeat_interval=NEVER)
    assert first.calls_for("developer_1") == 1
    w.clock.advance(STALE_AFTER + 1)
    assert await w.sweeper.execute() == [task_id]

    second = ScriptedLLM()
    assert await w.runner("b", second).execute(task_id) is TaskStatus.SUCCEEDED

    assert second.calls_for("developer_1") == 0  # not asked again
    assert [c.step for c in second.calls] == ["reviewer_2", "answer"]
    assert "developer did developer_1" in second.calls[0].messages[-1]["content"]
    task = w.task(task_id)
    assert task.result is not None
    assert task.result.text == "assistant did answer"
    assert task.attempt == 2
    assert w.events(task_id).count(EventType.TASK_PLANNED) == 1  # planned once

    # The first runner wakes up: its lease is gone, so it stops and writes nothing.
    seen = list(w.events(task_id))
    first.release.set()
    assert await run is None
    assert w.events(task_id) == seen
    assert w.task(task_id).result == task.result


async def test_a_step_that_keeps_failing_fails_the_task_after_the_fallback() -> None:
    w = World()
    task_id = await w.submitted(agents=AGENTS)

    def broken(call: LLMCall) -> Completion:
        raise LLMError("401 invalid API key", retryable=False)

    assert await w.runner("a", ScriptedLLM(broken)).execute(task_id) is TaskStatus.FAILED
    task = w.task(task_id)
    assert task.error is not None
    assert task.error.step == "developer_1"
    assert "fallback also failed" in task.error.message
    assert EventType.PLAN_DEGRADED in w.events(task_id)
    assert w.events(task_id)[-1] == EventType.TASK_FAILED


async def test_a_task_claimed_too_often_fails_instead_of_running_again() -> None:
    w = World()
    task_id = await w.submitted(agents=["assistant"])
    run = await started(w, BlockingLLM("assistant_1"), task_id, heartbeat_interval=NEVER)
    try:
        w.clock.advance(STALE_AFTER + 1)
        llm = ScriptedLLM()
        status = await w.runner("b", llm, max_attempts=1).execute(task_id)
        assert status is TaskStatus.FAILED
        assert llm.calls == []
        error = w.task(task_id).error
        assert error is not None
        assert error.type.value == "attempts"
    finally:
        await stop(run)


async def test_a_degraded_task_resumed_on_another_worker_runs_its_fallback() -> None:
    w = World()
    task_id = await w.submitted(agents=AGENTS)

    class ReviewerBreaks(BlockingLLM):
        """developer_1 succeeds, reviewer_2 fails for good, the fallback is held."""

        async def _answer(self, call: LLMCall) -> Completion:
            if call.step == "reviewer_2":
                raise LLMError("400 context too long", retryable=False)
            return await super()._answer(call)

    first = ReviewerBreaks("fallback")
    run = await started(w, first, task_id, heartbeat_interval=NEVER)  # worker a dies here
    try:
        assert EventType.PLAN_DEGRADED in w.events(task_id)
        w.clock.advance(STALE_AFTER + 1)
        assert await w.sweeper.execute() == [task_id]

        second = ScriptedLLM()
        assert await w.runner("b", second).execute(task_id) is TaskStatus.SUCCEEDED

        assert [c.step for c in second.calls] == ["fallback"]
        result = w.task(task_id).result
        assert result is not None
        assert (result.step, result.text) == ("fallback", "assistant did fallback")
    finally:
        await stop(run)


class CountingAnalyzer(RulesTaskAnalyzer):
    """The rules, counting the calls (with the LLM analyser, each one is paid for)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def analyze_request(self, text: str, history: Sequence[str] = ()) -> Analysis:
        self.calls += 1
        return await super().analyze_request(text, history)


async def test_analysis_and_plan_are_written_together_never_one_without_the_other() -> None:
    """One write holds both (and their events): a worker dying in it leaves neither, so
    no task shows an analysis whose plan a later attempt could make differently."""
    w = World()
    task_id = await w.submitted("Write a Python function that parses dates")
    analyzer = CountingAnalyzer()
    w.db.fail("tasks.save_steps", ConnectionError("the worker died"))  # the plan's write
    with pytest.raises(ConnectionError):
        await w.runner("a", analyzer=analyzer).execute(task_id)
    assert w.task(task_id).analysis is None
    assert w.task(task_id).plan is None
    assert EventType.TASK_ANALYZED not in w.events(task_id)
    w.clock.advance(STALE_AFTER + 1)
    assert await w.sweeper.execute() == [task_id]

    assert await w.runner("b", analyzer=analyzer).execute(task_id) is TaskStatus.SUCCEEDED

    assert w.task(task_id).analysis is not None
    assert w.task(task_id).plan is not None
    assert w.events(task_id).count(EventType.TASK_ANALYZED) == 1
    assert w.events(task_id).count(EventType.TASK_PLANNED) == 1


async def test_a_stored_analysis_is_not_paid_for_again() -> None:
    """Defect 2: a task whose analysis is stored and whose plan is not (written by an
    earlier release, one write each) plans from the stored analysis instead of paying
    for a second one."""
    w = World()
    task_id = await w.submitted("Write a Python function that parses dates")
    stored = await RulesTaskAnalyzer().analyze_request("Write a Python function that parses dates")
    async with w.db.uow() as uow:
        await uow.tasks.save_analysis(task_id, stored)
        await uow.commit()
    analyzer = CountingAnalyzer()

    assert await w.runner("b", analyzer=analyzer).execute(task_id) is TaskStatus.SUCCEEDED

    assert analyzer.calls == 0
    assert w.task(task_id).analysis == stored
    assert EventType.TASK_ANALYZED not in w.events(task_id)
    assert w.events(task_id).count(EventType.TASK_PLANNED) == 1
    assert w.events(task_id).count(EventType.TASK_PLANNED) == 1
