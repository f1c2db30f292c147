"""The heartbeat of one run: it keeps the runner's claim while the run works.

Rules:
- every ``interval`` seconds it renews the claim; a cancel request, a lost claim or
  the time limit (``max_runtime``) stops the work, saying why in ``stop``;
- once the run starts writing the task's end (``ending`` is set), nothing stops it:
  that write is fenced itself (under the task's row lock it checks the claim and a
  cancel request), so its commit and the publish of the terminal event always
  finish. A beat that lands just after that commit finds the task no longer
  running: that is the end the run wrote, not a lost claim (issue 20: taking it
  for one cancelled the publish, and live subscribers got the terminal event only
  from their quiet check);
- stopping lets a beat in flight finish (cutting one mid-transaction costs the
  pool its connection); only a beat that hangs is cut.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from uuid import UUID

from chatsys.domain.planning.journal import LeaseLost
from chatsys.domain.shared.uow import Factory
from chatsys.domain.tasks.uow import TasksUnitOfWork


class Cancelled(Exception):
    """A cancel was requested while the task ran."""


class TimedOut(Exception):
    """The attempt ran longer than its limit."""


class RunHeartbeat:
    def __init__(
        self,
        uow: Factory[TasksUnitOfWork],
        task_id: UUID,
        worker_id: str,
        *,
        interval: float,
        max_runtime: float,
    ) -> None:
        self._uow = uow
        self._task_id = task_id
        self._worker_id = worker_id
        self._interval = interval
        self._max_runtime = max_runtime
        self.stop: list[Exception] = []  # why it stopped the work, if it did
        self.ending = asyncio.Event()  # the run writes the task's end (or is over)
        self._beating: asyncio.Task[None] | None = None

    def watch(self, work: asyncio.Task[Any]) -> None:
        self._beating = asyncio.create_task(self._beat(work), name=f"heartbeat:{self._task_id}")

    async def _beat(self, work: asyncio.Task[Any]) -> None:
        deadline = asyncio.get_running_loop().time() + self._max_runtime
        while not self.ending.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ending.wait(), self._interval)
                return
            try:
                async with self._uow() as uow:
                    lease = await uow.tasks.heartbeat(self._task_id, self._worker_id)
                    await uow.commit()
            except Exception:  # noqa: S112 (the database is away: beat again next time)
                continue
            if self.ending.is_set():
                return
            if not lease.owned or lease.cancel_requested:
                self.stop.append(Cancelled() if lease.owned else LeaseLost(str(self._task_id)))
                work.cancel()
                return
            if asyncio.get_running_loop().time() > deadline:
                self.stop.append(TimedOut())
                work.cancel()
                return

    async def close(self) -> None:
        self.ending.set()
        beating = self._beating
        if beating is None:
            return
        done, _ = await asyncio.wait({beating}, timeout=max(1.0, 2 * self._interval))
        if not done:
            beating.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await beating
