"""The heartbeats of a runner's runs: they keep each run's claim while it works.

Rules:
- every ``interval`` seconds one statement renews the claim of every run of the
  runner that is not ending; for each, a cancel request, a lost claim or
  the time limit (``max_runtime``) stops the work, saying why in ``stop``;
- once the run starts writing the task's end (``ending`` is set), nothing stops it:
  that write is fenced itself (under the task's row lock it checks the claim and a
  cancel request), so its commit and the publish of the terminal event always
  finish. A beat that lands just after that commit finds the task no longer
  running: that is the end the run wrote, not a lost claim (issue 20: taking it
  for one cancelled the publish, and live subscribers got the terminal event only
  from their quiet check);
- a run that stops lets a beat in flight that includes it land first (cutting one
  mid-transaction costs the pool its connection); only a beat that hangs is left
  behind; the beats stop when no run is left.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from uuid import UUID

from chatsys.domain.planning.journal import LeaseLost
from chatsys.domain.shared.uow import Factory
from chatsys.domain.tasks.ports import Lease
from chatsys.domain.tasks.uow import TasksUnitOfWork


class Cancelled(Exception):
    """A cancel was requested while the task ran."""


class TimedOut(Exception):
    """The attempt ran longer than its limit."""


class RunHeartbeat:
    """One run's heartbeat: why it stopped the work (``stop``), and ``ending``. Its beats
    are ``Heartbeats``' (one statement for every run of the runner)."""

    def __init__(self, beats: Heartbeats, task_id: UUID, *, max_runtime: float) -> None:
        self._beats = beats
        self.task_id = task_id
        self._max_runtime = max_runtime
        self.stop: list[Exception] = []  # why it stopped the work, if it did
        self.ending = asyncio.Event()  # the run writes the task's end (or is over)
        self._work: asyncio.Task[Any] | None = None
        self._deadline = 0.0

    def watch(self, work: asyncio.Task[Any]) -> None:
        self._work = work
        self._deadline = asyncio.get_running_loop().time() + self._max_runtime
        self._beats.join(self)

    def renewed(self, lease: Lease) -> None:
        """A beat's answer for this run (after its commit)."""
        work = self._work
        if self.ending.is_set() or work is None or self.stop:
            return
        if not lease.owned or lease.cancel_requested:
            self.stop.append(Cancelled() if lease.owned else LeaseLost(str(self.task_id)))
            work.cancel()
        elif asyncio.get_running_loop().time() > self._deadline:
            self.stop.append(TimedOut())
            work.cancel()

    async def close(self) -> None:
        self.ending.set()
        await self._beats.leave(self)


class Heartbeats:
    """The heartbeats of one runner's runs, renewed together: every ``interval`` seconds
    one statement renews the claim of each run not yet ending and reads its cancel flag
    (16 runs at once cost one transaction per interval, not 16: bench/ runs)."""

    def __init__(self, uow: Factory[TasksUnitOfWork], worker_id: str, *, interval: float) -> None:
        self._uow = uow
        self._worker_id = worker_id
        self._interval = interval
        self._runs: dict[UUID, RunHeartbeat] = {}
        self._beating: asyncio.Task[None] | None = None
        self._in_flight: set[UUID] = set()
        self._landed = asyncio.Event()

    def join(self, run: RunHeartbeat) -> None:
        self._runs[run.task_id] = run
        if self._beating is None or self._beating.done():
            self._beating = asyncio.create_task(self._beat(), name="heartbeats")

    async def leave(self, run: RunHeartbeat) -> None:
        """Stop beating for ``run``; a beat in flight that includes it lands first (cutting
        one mid-transaction costs the pool its connection), unless it hangs."""
        if self._runs.get(run.task_id) is run:
            del self._runs[run.task_id]
        if run.task_id in self._in_flight:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._landed.wait(), max(1.0, 2 * self._interval))

    async def _beat(self) -> None:
        while self._runs:
            await asyncio.sleep(self._interval)
            runs = [r for r in self._runs.values() if not r.ending.is_set()]
            if not runs:
                continue
            self._in_flight = {r.task_id for r in runs}
            self._landed.clear()
            try:
                async with self._uow() as uow:
                    leases = await uow.tasks.heartbeat(list(self._in_flight), self._worker_id)
                    await uow.commit()
            except Exception:  # noqa: S112 (the database is away: beat again next time)
                continue
            finally:
                self._in_flight = set()
                self._landed.set()
            for run in runs:
                run.renewed(leases.get(run.task_id, _LOST))


_LOST = Lease(owned=False, cancel_requested=False)
