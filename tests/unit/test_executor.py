"""The executor against hand-written fakes of its ports."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

import pytest

from chatsys.domain.approvals.model import Approval
from chatsys.domain.planning.executor import (
    PlanExecutor,
    StepFailed,
    StepInput,
    StepOutput,
    StepSink,
)
from chatsys.domain.planning.planner import Planner
from chatsys.domain.shared.errors import LLMError
from chatsys.domain.tasks.model import Usage


class Journal:
    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []

    async def started(self, key: str, attempt: int) -> None:
        self.log.append(("started", key, attempt))

    async def retrying(self, key: str, attempt: int, error: str, delay: float) -> None:
        self.log.append(("retrying", key, attempt, error))

    async def completed(self, key: str, output: StepOutput) -> None:
        self.log.append(("completed", key, output.text))

    async def failed(self, key: str, attempt: int, error: str) -> None:
        self.log.append(("failed", key, attempt, error))

    def sink(self, key: str) -> StepSink:
        return Sink()


class Sink:
    async def delta(self, text: str) -> None:
        return None

    async def tool_started(self, call_id: str, name: str, arguments: Mapping[str, Any]) -> None:
        return None

    async def tool_completed(self, call_id: str, name: str, result: str, is_error: bool) -> None:
        return None

    async def approval(self, call_id: str, name: str, arguments: Mapping[str, Any]) -> Approval:
        raise AssertionError("no tool here needs an approval")


class Agents:
    """Answers ``<key>(<deps>)``; can fail given steps a number of times."""

    def __init__(self, failures: dict[str, list[LLMError]] | None = None, delay: float = 0.0):
        self.failures = failures or {}
        self.delay = delay
        self.calls: list[str] = []
        self.running = 0
        self.peak = 0

    async def run(self, step: StepInput, sink: StepSink) -> StepOutput:
        self.calls.append(step.key)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(self.delay)
            pending = self.failures.get(step.key)
            if pending:
                raise pending.pop(0)
            deps = ",".join(f"{k}={v}" for k, v in sorted(step.dependencies.items()))
            return StepOutput(f"{step.key}({deps})", Usage(10, 5, 0.001))
        finally:
            self.running -= 1


PLAN = Planner().custom(
    [
        {"key": "implement", "agent": "developer", "instruction": "build"},
        {"key": "review", "agent": "reviewer", "instruction": "r", "depends_on": ["implement"]},
        {"key": "test", "agent": "qa", "instruction": "t", "depends_on": ["implement"]},
        {"key": "answer", "agent": "assistant", "instruction": "a",
         "depends_on": ["review", "test"]},
    ]
)  # fmt: skip
TEMPLATE = StepInput(task_id=uuid.uuid4(), key="", role="assistant", instruction="", request="r")


async def no_sleep(_: float) -> None:
    return None


async def test_dependencies_feed_their_outputs_and_independent_steps_overlap() -> None:
    agents = Agents(delay=0.05)
    outputs = await PlanExecutor(agents, sleep=no_sleep).execute(PLAN, TEMPLATE, Journal())
    assert outputs["review"] == "review(implement=implement())"
    assert outputs["answer"] == (
        "answer(review=review(implement=implement()),test=test(implement=implement()))"
    )
    assert agents.peak == 2  # review and test ran at the same time


async def test_parallelism_is_bounded() -> None:
    agents = Agents(delay=0.05)
    await PlanExecutor(agents, max_parallel=1, sleep=no_sleep).execute(PLAN, TEMPLATE, Journal())
    assert agents.peak == 1


async def test_a_retryable_failure_is_retried_then_succeeds() -> None:
    agents = Agents({"review": [LLMError("503 overloaded", retryable=True)]})
    journal = Journal()
    await PlanExecutor(agents, sleep=no_sleep).execute(PLAN, TEMPLATE, journal)
    assert ("retrying", "review", 1, "503 overloaded") in journal.log
    assert ("completed", "review", "review(implement=implement())") in journal.log
    assert agents.calls.count("review") == 2


async def test_a_permanent_failure_fails_the_plan_without_retrying() -> None:
    agents = Agents({"implement": [LLMError("401 bad key", retryable=False)]})
    journal = Journal()
    with pytest.raises(StepFailed, match="401 bad key"):
        await PlanExecutor(agents, sleep=no_sleep).execute(PLAN, TEMPLATE, journal)
    assert agents.calls == ["implement"]
    assert ("failed", "implement", 1, "401 bad key") in journal.log


async def test_retries_are_bounded() -> None:
    errors = [LLMError("timeout", retryable=True) for _ in range(5)]
    agents = Agents({"implement": errors})
    with pytest.raises(StepFailed):
        await PlanExecutor(agents, max_attempts=3, sleep=no_sleep).execute(
            PLAN, TEMPLATE, Journal()
        )
    assert agents.calls.count("implement") == 3


async def test_checkpointed_steps_are_not_run_again() -> None:
    agents = Agents()
    done = {"implement": "saved implementation", "review": "saved review"}
    outputs = await PlanExecutor(agents, sleep=no_sleep).execute(PLAN, TEMPLATE, Journal(), done)
    assert sorted(agents.calls) == ["answer", "test"]
    assert outputs["test"] == "test(implement=saved implementation)"


async def test_outputs_of_steps_outside_the_plan_do_not_count_as_done() -> None:
    # A degraded task resumed elsewhere: its original plan's finished steps are checkpointed
    # too, but the fallback plan still has to run.
    agents = Agents()
    fallback = Planner().custom([{"key": "fallback", "agent": "assistant", "instruction": "a"}])
    outputs = await PlanExecutor(agents, sleep=no_sleep).execute(
        fallback, TEMPLATE, Journal(), {"implement": "saved implementation"}
    )
    assert agents.calls == ["fallback"]
    assert outputs["fallback"] == "fallback()"


async def test_a_failing_step_cancels_its_running_sibling() -> None:
    class Slow(Agents):
        async def run(self, step: StepInput, sink: StepSink) -> StepOutput:
            if step.key == "test":
                await asyncio.sleep(30)
            return await super().run(step, sink)

    agents = Slow({"review": [LLMError("bad request", retryable=False)]})
    with pytest.raises(StepFailed):
        await asyncio.wait_for(
            PlanExecutor(agents, sleep=no_sleep).execute(PLAN, TEMPLATE, Journal()), 5
        )
