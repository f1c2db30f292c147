"""Running a task on a worker: claim, analyse, plan, execute, finish.

Rules:
- the database lets one runner hold a task: ``claim`` succeeds for a queued
  task, or for a running (or awaiting_approval) one whose heartbeat lapsed (its
  worker died);
- while running, and while a step waits for a tool approval (the task is then
  ``awaiting_approval``, see ``chatsys.domain.approvals.gate``), a heartbeat every
  ``heartbeat_interval`` seconds keeps the claim and notices a cancellation
  request (so cancelling takes effect within about one interval) or a lost
  claim (the runner stops, writing nothing; a new claim here first waits for it);
- analysis and plan are computed once and stored; completed steps are
  checkpointed and never run again when the task resumes on another worker;
- recovery, in order: the executor retries a failing step; then the plan is
  degraded to one ``assistant`` step; then the task fails with the error;
- a cancel accepted while it runs wins, even over a run that just reached its end
  (``end_run``, under the task's row lock);
- a task never stays ``running`` when its runner stops: it ends succeeded,
  failed or cancelled, or (worker shutting down, or its run broken off by a
  database or Redis outage: ``hand_back``) it is handed back to the queue
  without spending an attempt; only a killed worker leaves it running, and then
  its heartbeat lapses and the sweeper re-queues it;
- once the runner writes the task's end, its heartbeat stops nothing (that write is
  fenced itself), so the terminal event is always committed and published
  (``chatsys.domain.tasks.heartbeat``);
- a heartbeat that cannot be written (the database is away) is tried again at
  the next interval: the claim lapses only when none succeeds for
  ``stale_after`` seconds;
- after ``max_attempts`` claims the task fails instead of running again, and an
  attempt running longer than ``max_runtime`` seconds fails the task (so a task
  too long for its limit cannot loop between workers); time spent waiting for
  approvals counts, and an approval expires by that limit at the latest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from chatsys.domain.approvals.decisions import expire_dropped
from chatsys.domain.approvals.gate import ApprovalGate
from chatsys.domain.conversations.messages import earlier_turns
from chatsys.domain.conversations.model import MessageRole
from chatsys.domain.conversations.ports import StoredMessage
from chatsys.domain.nlu.analyzer import Analysis
from chatsys.domain.nlu.llm_analyzer import TaskAnalyzer
from chatsys.domain.planning.executor import PlanExecutor, StepFailed, StepInput, Turn
from chatsys.domain.planning.journal import LeaseLost, Start, TaskJournal
from chatsys.domain.planning.planner import Plan, Planner, PlanStep, Role
from chatsys.domain.shared.clock import Clock
from chatsys.domain.shared.errors import InvalidInput, LLMError
from chatsys.domain.shared.uow import Factory
from chatsys.domain.tasks.ending import Callbacks, end_run
from chatsys.domain.tasks.heartbeat import Cancelled, Heartbeats, RunHeartbeat, TimedOut
from chatsys.domain.tasks.model import (
    EventType,
    FailureKind,
    StepRecord,
    StepStatus,
    Task,
    TaskError,
    TaskResult,
    TaskStatus,
)
from chatsys.domain.tasks.recovery import requeue_or_cancel
from chatsys.domain.tasks.submission import Dispatcher
from chatsys.domain.tasks.uow import TasksUnitOfWork

HISTORY = 20  # earlier messages of the conversation given to the agents
Write = Callable[[TasksUnitOfWork, Task], Awaitable[None]]
"""An intent write, given the unit of work and the task read under its row lock."""


class RunTask:
    def __init__(
        self,
        uow: Factory[TasksUnitOfWork],
        clock: Clock,
        *,
        analyzer: TaskAnalyzer,
        planner: Planner,
        executor: PlanExecutor,
        dispatcher: Dispatcher,
        callbacks: Callbacks,
        worker_id: str,
        heartbeat_interval: float = 0.5,
        stale_after: float = 10.0,
        max_attempts: int = 5,
        max_runtime: float = 1800.0,
        approval_timeout: float = 600.0,
        approval_poll: float = 0.5,
        single_statement: Factory[TasksUnitOfWork] | None = None,
    ) -> None:
        self._uow = uow
        self._single = single_statement
        self._clock = clock
        self._analyzer = analyzer
        self._planner = planner
        self._executor = executor
        self._dispatcher = dispatcher
        self._callbacks = callbacks
        self._worker_id = worker_id
        self._stale_after = stale_after
        self._max_attempts = max_attempts
        self._max_runtime = max_runtime
        self._approval_timeout = approval_timeout
        self._approval_poll = approval_poll
        self._runs: dict[UUID, asyncio.Task[TaskStatus]] = {}  # this process' runs
        self._beats: dict[asyncio.Task[Any], RunHeartbeat] = {}  # their heartbeats, by work
        self._heartbeats = Heartbeats(uow, worker_id, interval=heartbeat_interval)

    async def execute(self, task_id: UUID) -> TaskStatus | None:
        """Run the task if this runner can claim it; returns its final status, or None."""
        if (earlier := self._runs.get(task_id)) is not None:  # a live one: no claim
            await asyncio.wait({earlier}, timeout=self._stale_after)
        async with self._uow() as uow:
            task = await uow.tasks.claim(task_id, self._worker_id, stale_after=self._stale_after)
            if task is None:
                return None
            if task.plan is not None:  # steps are saved with their plan: none before it
                task.steps = await uow.tasks.steps(task_id)
            await uow.events.append(
                task_id,
                EventType.TASK_STARTED,
                {"attempt": task.attempt, "worker": self._worker_id},
            )
            await uow.commit()
        if task.attempt > self._max_attempts:
            message = f"gave up after {self._max_attempts} attempts (workers kept stopping)"
            return await self._finish_failed(task, TaskError(message, FailureKind.ATTEMPTS))

        beat = RunHeartbeat(self._heartbeats, task_id, max_runtime=self._max_runtime)
        deadline = self._clock.now() + timedelta(seconds=self._max_runtime)
        work = asyncio.create_task(self._run(task, beat.stop, deadline), name=f"task:{task_id}")
        self._runs[task_id] = work
        self._beats[work] = beat
        beat.watch(work)
        try:
            return await work
        except Cancelled:
            return await self._finish_cancelled(task)
        except TimedOut:
            message = f"the task ran longer than its limit of {self._max_runtime:g} s"
            return await self._finish_failed(task, TaskError(message, FailureKind.TIMEOUT))
        except LeaseLost:
            return None
        except asyncio.CancelledError:  # the worker is shutting down
            await asyncio.shield(self.hand_back(task.id, reason="worker shutting down"))
            raise
        finally:
            self._runs.pop(task_id, None)
            self._beats.pop(work, None)
            await beat.close()

    async def _run(self, task: Task, stop: list[Exception], deadline: datetime) -> TaskStatus:
        try:
            return await self._pipeline(task, deadline)
        except asyncio.CancelledError:
            if stop:
                raise stop[0] from None
            raise

    async def _history(self, task: Task) -> list[Turn]:
        if task.conversation_id is None:
            return []
        async with self._uow() as uow:
            earlier = await earlier_turns(uow, task.conversation_id, task.id, limit=HISTORY)
        return [Turn(m.role.value, m.content) for m in earlier]

    async def _pipeline(self, task: Task, deadline: datetime) -> TaskStatus:
        history = await self._history(task)
        analysis, plan, start = await self._prepare(task, history)
        template = StepInput(
            task_id=task.id,
            key="",
            role=Role.ASSISTANT.value,
            instruction="",
            request=task.input,
            history=history,
            analysis=analysis,
            model=task.options.get("model"),
            workspace=str(task.conversation_id or task.id),
        )
        gate = ApprovalGate(
            self._uow,
            self._clock,
            task.id,
            self._worker_id,
            self._callbacks,
            timeout=self._approval_timeout,
            poll_interval=self._approval_poll,
            deadline=deadline,
        )
        journal = TaskJournal(self._uow, self._clock, task.id, self._worker_id,
                              {s.key: s for s in task.steps}, approvals=gate,
                              start=start, single_statement=self._single)  # fmt: skip
        try:
            outputs = await self._executor.execute(plan, template, journal, _done(task.steps))
        except StepFailed as failure:
            await journal.close()
            await journal.write_start()
            if plan.shape == "degraded" or len(plan.steps) == 1:
                return await self._finish_failed(task, _error(failure), journal)
            return await self._degrade(task, plan, failure, template, journal)
        except (LLMError, InvalidInput) as exc:
            await journal.close()
            await journal.write_start()
            return await self._finish_failed(task, TaskError(exc.detail, FailureKind.LLM), journal)
        except BaseException:
            await asyncio.shield(journal.close())
            raise
        await journal.write_start()
        return await self._finish_succeeded(task, plan, outputs, journal)

    async def _prepare(
        self, task: Task, history: Sequence[Turn]
    ) -> tuple[Analysis, Plan, Start | None]:
        """Analysis and plan, each computed once and stored: a resumed task never pays for
        another. A fresh task's (both, with their events) are written by its journal's
        first write, the start of its first step: one transaction fewer per run."""
        events: list[tuple[str, dict[str, Any]]] = []
        analysis, plan = task.analysis, task.plan
        new_analysis = analysis is None
        if analysis is None:
            analysis = task.analysis = await self._analyzer.analyze_request(
                task.input, [t.content for t in history if t.role == "user"]
            )
            events.append((EventType.TASK_ANALYZED, {"analysis": analysis.as_dict()}))
        if plan is None:
            plan = task.plan = self._planner.for_task(task.options, analysis)
            steps = task.steps = [_record(s) for s in plan.steps]
            events.append((EventType.TASK_PLANNED, {"plan": plan.as_dict()}))
            saved, planned = (analysis if new_analysis else None), plan

            async def save(uow: TasksUnitOfWork) -> None:
                await uow.tasks.save_plan(task.id, planned, steps, analysis=saved)

            return analysis, plan, Start(events, save)
        if events:  # a stored plan without its analysis: cannot happen, but is written
            stored = analysis
            await self._write(
                task.id, *events[0], lambda uow, _: uow.tasks.save_analysis(task.id, stored)
            )
        return analysis, plan, None

    async def _degrade(
        self, task: Task, plan: Plan, failure: StepFailed, template: StepInput, journal: TaskJournal
    ) -> TaskStatus:
        fallback = self._planner.fallback(plan)
        record = _record(fallback.final)
        task.plan = fallback
        task.steps = [*task.steps, record]
        journal.steps[record.key] = record
        data = {
            "failed_step": failure.key,
            "reason": failure.message,
            "plan": replace(fallback, degraded_from=None).as_dict(),
        }

        async def degraded(uow: TasksUnitOfWork, current: Task) -> None:
            await expire_dropped(uow, task.id, self._clock.now())  # nothing will make them
            if current.status is TaskStatus.AWAITING_APPROVAL:  # nothing waits any more
                current.move_to(TaskStatus.RUNNING)
                await uow.tasks.set_status(task.id, current.status)
            await uow.tasks.save_plan(task.id, fallback, [record])

        await self._write(task.id, EventType.PLAN_DEGRADED, data, degraded)
        try:
            outputs = await self._executor.execute(fallback, template, journal)
        except StepFailed as second:
            also = f"; the single-assistant fallback also failed: {second.message}"
            error = _error(failure)
            return await self._finish_failed(
                task, replace(error, message=error.message + also), journal
            )
        return await self._finish_succeeded(task, fallback, outputs, journal)

    async def _write(self, task_id: UUID, event: str, data: dict[str, Any], write: Write) -> None:
        """One intent write with its event, while this runner still holds the task."""
        async with self._uow() as uow:
            current = await uow.tasks.lock(task_id)
            if current is None or current.worker_id != self._worker_id:
                raise LeaseLost(str(task_id))
            await write(uow, current)
            await uow.events.append(task_id, event, data)
            await uow.commit()

    async def _finish(
        self,
        task: Task,
        status: TaskStatus,
        event: EventType,
        data: dict[str, Any],
        *,
        answer: str | None = None,
        answer_agent: str | None = None,
    ) -> TaskStatus:
        run = asyncio.current_task()
        beat = self._beats.get(run) if run is not None else None
        if beat is not None:  # the run writes its end: its heartbeat stops nothing now
            beat.ending.set()
        async with self._uow() as uow:
            current = await uow.tasks.lock(task.id)
            if current is None or current.status.is_terminal:
                return current.status if current else status
            if current.worker_id != self._worker_id:  # re-queued meanwhile: not ours
                raise LeaseLost(str(task.id))
            current.result, current.error, current.usage = task.result, task.error, task.usage
            if current.cancel_requested:  # it ends cancelled (end_run): no answer is posted
                answer = None
            if answer is not None and task.conversation_id is not None:
                await uow.messages.add(
                    StoredMessage(
                        uuid4(),
                        task.conversation_id,
                        MessageRole.ASSISTANT,
                        answer,
                        self._clock.now(),
                        task.id,
                        answer_agent,
                    )
                )
            status, deliveries = await end_run(
                uow, current, status, event, data, clock=self._clock, callbacks=self._callbacks
            )
            await uow.commit()
        await self._callbacks.dispatch(deliveries)
        return status

    async def _finish_succeeded(
        self, task: Task, plan: Plan, outputs: dict[str, str], journal: TaskJournal
    ) -> TaskStatus:
        final = plan.final
        task.result = TaskResult(outputs[final.key], final.key, final.agent.value)
        task.usage = journal.total_usage()
        data = {"result": task.result.as_dict(), "usage": task.usage.as_dict()}
        return await self._finish(
            task,
            TaskStatus.SUCCEEDED,
            EventType.TASK_SUCCEEDED,
            data,
            answer=outputs[final.key],
            answer_agent=final.agent.value,
        )

    async def _finish_failed(
        self, task: Task, error: TaskError, journal: TaskJournal | None = None
    ) -> TaskStatus:
        task.error = error
        if journal is not None:
            task.usage = journal.total_usage()
        data = {"error": error.as_dict(), "usage": task.usage.as_dict()}
        return await self._finish(task, TaskStatus.FAILED, EventType.TASK_FAILED, data)

    async def _finish_cancelled(self, task: Task) -> TaskStatus:
        data = {"reason": "cancel requested"}  # its usage: what its steps used
        return await self._finish(task, TaskStatus.CANCELLED, EventType.TASK_CANCELLED, data)

    async def hand_back(self, task_id: UUID, *, reason: str) -> bool:
        """Return a task this runner holds to the queue, its attempt unspent (the worker
        is shutting down, or its run broke off because Postgres or Redis went away); or
        end it cancelled when a cancel was requested. False when this runner does not
        hold it (never claimed it, or the sweeper already moved it on)."""
        async with self._uow() as uow:
            current = await uow.tasks.lock(task_id)
            if current is None or current.status.is_terminal:
                return False
            if current.worker_id != self._worker_id:
                return False
            entry, deliveries = await requeue_or_cancel(
                uow, current, self._clock, self._callbacks, reason=reason, spend_attempt=False
            )
            await uow.commit()
        await self._callbacks.dispatch(deliveries)
        if entry is not None:
            await self._dispatcher.dispatch(entry, task_id, priority=current.priority)
        return True


def _record(step: PlanStep) -> StepRecord:
    return StepRecord(step.key, step.agent.value, step.instruction, step.depends_on)


def _done(steps: Sequence[StepRecord]) -> dict[str, str]:
    done = StepStatus.SUCCEEDED
    return {s.key: s.output for s in steps if s.status is done and s.output is not None}


def _error(failure: StepFailed) -> TaskError:
    return TaskError(str(failure), FailureKind.LLM, failure.key)
