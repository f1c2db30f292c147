"""The durable journal of a running task: every step checkpoint and event, fenced.

Each write locks the task's row and checks this runner still holds it, so a
runner that lost its lease (its heartbeat lapsed and another worker took the
task over) can never write over the new runner's work.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from chatsys.domain.approvals.gate import ApprovalGate, ApprovalLeaseLost
from chatsys.domain.approvals.model import Approval, ApprovalStatus, arguments_digest
from chatsys.domain.planning.executor import StepOutput, StepSink
from chatsys.domain.shared.clock import Clock
from chatsys.domain.shared.uow import Factory
from chatsys.domain.tasks.model import EventType, StepRecord, StepStatus, Usage
from chatsys.domain.tasks.uow import TasksUnitOfWork

TOOL_RESULT_EVENT_CHARS = 2_000


class LeaseLost(Exception):
    """Another runner owns the task now; stop without writing anything."""


@dataclass(frozen=True)
class Start:
    """A fresh task's start (its analysis and plan, with their events), written with the
    journal's first write instead of in a transaction of its own."""

    events: list[tuple[str, dict[str, Any]]]
    save: Callable[[TasksUnitOfWork], Awaitable[None]]


class TaskJournal:
    def __init__(
        self,
        uow: Factory[TasksUnitOfWork],
        clock: Clock,
        task_id: UUID,
        worker_id: str,
        steps: Mapping[str, StepRecord],
        *,
        approvals: ApprovalGate | None = None,
        start: Start | None = None,
        single_statement: Factory[TasksUnitOfWork] | None = None,
    ) -> None:
        self._uow = uow
        # Events alone are one statement (the fenced append): written in a unit of work
        # of their own, with no BEGIN and COMMIT around it, when the runner has one.
        self._single = single_statement or uow
        self.approvals = approvals
        self._clock = clock
        self.task_id = task_id
        self._worker_id = worker_id
        self.steps = dict(steps)
        self._sinks: dict[str, _StepSink] = {}
        self._start = start
        self._started: asyncio.Event | None = None  # set once the start's write ended
        self._start_failed = False

    async def _fenced(self, uow: TasksUnitOfWork) -> None:
        task = await uow.tasks.lock(self.task_id)
        if task is None or task.worker_id != self._worker_id:
            raise LeaseLost(f"task {self.task_id} is no longer run by {self._worker_id}")

    async def write(self, events: list[tuple[str, dict[str, Any]]], *steps: StepRecord) -> None:
        """One fenced transaction: the events (after the task's start, when it is not
        written yet) and the steps. A write made while the start's write is in flight
        (parallel first steps) waits for it, so no event goes before the start's."""
        start, self._start = self._start, None
        if start is not None:
            self._started = asyncio.Event()
            try:
                await self._write([*start.events, *events], steps, start.save)
            except BaseException:
                self._start_failed = True
                raise
            finally:
                self._started.set()
            return
        if self._started is not None and not self._started.is_set():
            await self._started.wait()
        if self._start_failed:
            raise RuntimeError(f"the start of task {self.task_id} was not written")
        await self._write(events, steps, None)

    async def write_start(self) -> None:
        """The start, if no write carried it yet (a run that wrote no step)."""
        if self._start is not None:
            await self.write([])

    async def _write(
        self,
        events: list[tuple[str, dict[str, Any]]],
        steps: tuple[StepRecord, ...],
        save: Callable[[TasksUnitOfWork], Awaitable[None]] | None,
    ) -> None:
        alone = bool(events) and not steps and save is None
        async with (self._single if alone else self._uow)() as uow:
            if events:
                # The fenced append takes the row lock and checks the lease in one go.
                try:
                    await uow.events.append_all(self.task_id, events, runner=self._worker_id)
                except LookupError as exc:
                    raise LeaseLost(
                        f"task {self.task_id} is no longer run by {self._worker_id}"
                    ) from exc
            else:
                await self._fenced(uow)
            if save is not None:
                await save(uow)
            if steps:
                await uow.tasks.save_steps(self.task_id, steps)
            await uow.commit()

    def _now(self) -> datetime:
        return self._clock.now()

    def total_usage(self) -> Usage:
        total = Usage()
        for step in self.steps.values():
            total = total + step.usage
        return total

    async def started(self, key: str, attempt: int) -> None:
        step = self.steps[key]
        step.status = StepStatus.RUNNING
        step.attempt = attempt
        step.started_at = step.started_at or self._now()
        data = {"step": key, "agent": step.agent, "attempt": attempt}
        await self.write([(EventType.STEP_STARTED, data)], step)

    async def retrying(self, key: str, attempt: int, error: str, delay: float) -> None:
        await self._flush(key)
        step = self.steps[key]
        data = {"step": key, "attempt": attempt, "error": error, "retry_in_s": round(delay, 3)}
        await self.write([(EventType.STEP_RETRYING, data)], step)

    async def _flush(self, key: str) -> None:
        sink = self._sinks.get(key)
        if sink is not None:
            await sink.flush()

    async def completed(self, key: str, output: StepOutput) -> None:
        sink = self._sinks.get(key)
        rest = await sink.settle() if sink is not None else []  # written with the end
        step = self.steps[key]
        step.status = StepStatus.SUCCEEDED
        step.output = output.text
        step.usage = step.usage + output.usage
        step.finished_at = self._now()
        step.error = None
        events: list[tuple[str, dict[str, Any]]] = [
            (
                EventType.MESSAGE_COMPLETED,
                {"step": key, "agent": step.agent, "text": output.text, "model": output.model},
            ),
            (
                EventType.STEP_COMPLETED,
                {"step": key, "agent": step.agent, "usage": step.usage.as_dict()},
            ),
            (EventType.USAGE_UPDATED, {"usage": self.total_usage().as_dict()}),
        ]
        await self.write([*rest, *events], step)

    async def failed(self, key: str, attempt: int, error: str) -> None:
        await self._flush(key)
        step = self.steps[key]
        step.status = StepStatus.FAILED
        step.error = {"message": error, "attempt": attempt}
        step.finished_at = self._now()
        data = {"step": key, "agent": step.agent, "attempt": attempt, "error": error}
        await self.write([(EventType.STEP_FAILED, data)], step)

    async def close(self) -> None:
        """Stop token writes still in flight (a step cut short): nothing is written
        after the task's outcome."""
        for sink in self._sinks.values():
            await sink.abandon()

    def sink(self, key: str) -> StepSink:
        self._sinks[key] = _StepSink(self, key, self.steps[key].attempt)
        return self._sinks[key]


class _StepSink:
    """Streams a step's tokens into ``message.delta`` events with group commit: a token
    is written (and published) as soon as no write is in flight; tokens that arrive
    during a write go out together in the next one. An idle stream costs one
    transaction per token, a fast one never waits on the database, and a replay
    yields the same text in the same order."""

    def __init__(self, journal: TaskJournal, key: str, attempt: int) -> None:
        self._journal = journal
        self._key = key
        self._attempt = attempt
        self._agent = journal.steps[key].agent
        self._buffer: list[str] = []
        self._writer: asyncio.Task[None] | None = None

    async def delta(self, text: str) -> None:
        self._buffer.append(text)
        writer = self._writer
        if writer is not None and writer.done():
            self._writer = None
            writer.result()  # a failed write (lost lease, database down) stops the step
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())

    def _take(self) -> list[tuple[str, dict[str, Any]]]:
        """The buffered tokens as one ``message.delta`` event (none when empty)."""
        if not self._buffer:
            return []
        text = "".join(self._buffer)
        self._buffer.clear()
        data = {"step": self._key, "agent": self._agent, "attempt": self._attempt, "text": text}
        return [(EventType.MESSAGE_DELTA, data)]

    async def _drain(self) -> None:
        while events := self._take():
            await self._journal.write(events)

    async def settle(self) -> list[tuple[str, dict[str, Any]]]:
        """The step's stream ends: the write in flight lands, and the tokens still
        buffered are handed over, for the step's last write to carry (one transaction
        fewer per step than writing them on their own)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                await asyncio.shield(writer)
            except asyncio.CancelledError:
                writer.cancel()
                raise
        return self._take()

    async def flush(self) -> None:
        if events := await self.settle():
            await self._journal.write(events)

    async def abandon(self) -> None:
        writer, self._writer = self._writer, None
        self._buffer.clear()
        if writer is not None and not writer.done():
            writer.cancel()
        if writer is not None:
            with contextlib.suppress(BaseException):
                await writer

    async def tool_started(self, call_id: str, name: str, arguments: Mapping[str, Any]) -> None:
        await self.flush()
        data = {"step": self._key, "call_id": call_id, "tool": name, "arguments": dict(arguments)}
        await self._journal.write([(EventType.TOOL_CALL_STARTED, data)])

    async def tool_completed(self, call_id: str, name: str, result: str, is_error: bool) -> None:
        shown = result[:TOOL_RESULT_EVENT_CHARS]
        data = {
            "step": self._key,
            "call_id": call_id,
            "tool": name,
            "result": shown,
            "truncated": len(result) > len(shown),
            "is_error": is_error,
        }
        await self._journal.write([(EventType.TOOL_CALL_COMPLETED, data)])

    async def approval(self, call_id: str, name: str, arguments: Mapping[str, Any]) -> Approval:
        gate = self._journal.approvals
        if gate is None:  # a journal with no way to ask: nobody can approve
            now = self._journal._now()
            return Approval(
                uuid4(), self._journal.task_id, self._key, self._agent, name, dict(arguments),
                arguments_digest(arguments), ApprovalStatus.EXPIRED, now, now, call_id,
                "approvals are not available here", None, now,
            )  # fmt: skip
        try:
            return await gate.request(
                step=self._key, agent=self._agent, call_id=call_id, tool=name, arguments=arguments
            )
        except ApprovalLeaseLost as exc:
            raise LeaseLost(str(exc)) from exc
