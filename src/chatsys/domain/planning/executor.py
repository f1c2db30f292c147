"""Runs a plan's DAG of steps with role agents.

Rules:
- a step starts once every step it depends on has succeeded; at most
  ``max_parallel`` steps run at once;
- each step gets the user's request, the conversation so far, the analysis and
  the outputs of the steps it depends on;
- steps already completed (checkpointed by an earlier attempt of the task)
  are not run again: their saved output is used;
- a step that fails with a retryable error is retried with exponential
  backoff, up to ``max_attempts``; a permanent error, or the last retry
  failing, fails the plan (the other running steps are cancelled);
- every start, retry, completion and failure goes to the journal, which
  checkpoints it before the executor moves on.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol
from uuid import UUID

from chatsys.domain.approvals.model import Approval
from chatsys.domain.nlu.analyzer import Analysis
from chatsys.domain.planning.planner import Plan, PlanStep
from chatsys.domain.shared.errors import LLMError
from chatsys.domain.tasks.model import Usage


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier message of the conversation, as the agents see it."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class StepInput:
    task_id: UUID
    key: str
    role: str
    instruction: str
    request: str
    dependencies: Mapping[str, str] = field(default_factory=dict)
    history: Sequence[Turn] = ()
    analysis: Analysis | None = None
    model: str | None = None
    attempt: int = 1
    workspace: str | None = None  # the folder of the file tools: the conversation's, or the task's


@dataclass(frozen=True, slots=True)
class StepOutput:
    text: str
    usage: Usage = field(default_factory=Usage)
    model: str | None = None


class StepSink(Protocol):
    """Where an agent reports progress while a step runs."""

    async def delta(self, text: str) -> None: ...

    async def tool_started(self, call_id: str, name: str, arguments: Mapping[str, Any]) -> None: ...

    async def tool_completed(
        self, call_id: str, name: str, result: str, is_error: bool
    ) -> None: ...

    async def approval(self, call_id: str, name: str, arguments: Mapping[str, Any]) -> Approval:
        """Ask a person to approve this call; returns once it is decided (approved,
        denied or expired)."""
        ...


class AgentRunner(Protocol):
    async def run(self, step: StepInput, sink: StepSink) -> StepOutput: ...


class StepJournal(Protocol):
    """Checkpoints of one task's steps (each call is durable when it returns)."""

    async def started(self, key: str, attempt: int) -> None: ...

    async def retrying(self, key: str, attempt: int, error: str, delay: float) -> None: ...

    async def completed(self, key: str, output: StepOutput) -> None: ...

    async def failed(self, key: str, attempt: int, error: str) -> None: ...

    def sink(self, key: str) -> StepSink: ...


class StepFailed(Exception):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"step '{key}' failed: {message}")
        self.key = key
        self.message = message


Sleep = Callable[[float], Awaitable[None]]


class PlanExecutor:
    def __init__(
        self,
        agents: AgentRunner,
        *,
        max_parallel: int = 4,
        max_attempts: int = 3,
        backoff: float = 0.5,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._agents = agents
        self._max_parallel = max_parallel
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._sleep = sleep

    async def execute(
        self,
        plan: Plan,
        template: StepInput,
        journal: StepJournal,
        done: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """Run every step not in ``done``; return every step's output by key."""
        outputs = dict(done or {})
        limit = asyncio.Semaphore(self._max_parallel)
        running: dict[asyncio.Task[StepOutput], PlanStep] = {}
        try:
            while any(s.key not in outputs for s in plan.steps):  # done may hold other keys
                for step in plan.steps:
                    if (
                        step.key not in outputs
                        and step not in running.values()
                        and all(d in outputs for d in step.depends_on)
                    ):
                        given = {d: outputs[d] for d in step.depends_on}
                        work = self._run_step(step, template, given, journal, limit)
                        running[asyncio.create_task(work, name=f"step:{step.key}")] = step
                if not running:  # cannot happen with a validated plan
                    raise StepFailed(plan.final.key, "no step can start")
                finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    step = running.pop(task)
                    outputs[step.key] = task.result().text
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        return outputs

    async def _run_step(
        self,
        step: PlanStep,
        template: StepInput,
        dependencies: Mapping[str, str],
        journal: StepJournal,
        limit: asyncio.Semaphore,
    ) -> StepOutput:
        async with limit:
            for attempt in range(1, self._max_attempts + 1):
                request = replace(
                    template,
                    key=step.key,
                    role=step.agent.value,
                    instruction=step.instruction,
                    dependencies=dependencies,
                    attempt=attempt,
                )
                await journal.started(step.key, attempt)
                try:
                    output = await self._agents.run(request, journal.sink(step.key))
                except LLMError as exc:
                    if not exc.retryable or attempt == self._max_attempts:
                        await journal.failed(step.key, attempt, exc.detail)
                        raise StepFailed(step.key, exc.detail) from exc
                    delay = self._backoff * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)  # noqa: S311
                    await journal.retrying(step.key, attempt, exc.detail, delay)
                    await self._sleep(delay)
                    continue
                await journal.completed(step.key, output)
                return output
        raise AssertionError("unreachable")  # pragma: no cover
