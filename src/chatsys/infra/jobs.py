"""arq job functions and the worker's maintenance loop. Each job takes arq's ``ctx``,
whose ``WorkerContext`` the worker's start-up hook (its composition root) puts there."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chatsys.domain.tasks.recovery import RequeueStale
from chatsys.domain.tasks.running import RunTask
from chatsys.domain.tasks.submission import Dispatcher
from chatsys.infra.logging import get_logger
from chatsys.infra.outages import OutageMonitor
from chatsys.infra.webhook_slots import WebhookSlots

log = get_logger(__name__)

CONTEXT = "chatsys"  # the key of the WorkerContext in arq's ctx


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """What the jobs of one worker process use, built once at its start-up."""

    worker_id: str
    engine: AsyncEngine
    run_task: RunTask
    webhooks: WebhookSlots | None  # None: this worker does not serve webhook deliveries
    outages: OutageMonitor
    maintenance: Maintenance


def context(ctx: dict[str, Any]) -> WorkerContext:
    worker: WorkerContext = ctx[CONTEXT]
    return worker


async def ping(ctx: dict[str, Any]) -> dict[str, Any]:
    """Round trip through the queue: proves a worker consumes jobs and reaches Postgres."""
    worker = context(ctx)
    async with worker.engine.connect() as conn:
        one = await conn.scalar(text("SELECT 1"))
    return {
        "worker_id": worker.worker_id,
        "pid": os.getpid(),
        "database": "ok" if one == 1 else "unexpected answer",
        "job_try": ctx.get("job_try"),
    }


async def run_task(ctx: dict[str, Any], task_id: str) -> str | None:
    """Run the task. When Postgres or Redis goes away under it, the run does not fail
    the task: the job waits until the server answers again, then hands the task back
    to the queue without spending an attempt (it resumes from its checkpoints), or, if
    this runner never held it, tries to claim it again."""
    worker = context(ctx)
    runner = worker.run_task
    import structlog

    with structlog.contextvars.bound_contextvars(task_id=task_id):
        while True:
            try:
                status = await runner.execute(UUID(task_id))
            except asyncio.CancelledError:
                # Only a worker shutting down cancels a run (the task's own time limit
                # fires long before arq's): the task is already back in the queue,
                # re-sent through the outbox. Returning lets arq finish its shutdown (its
                # close() would skip on_shutdown on a cancelled job) and keeps arq from
                # retrying this job too.
                log.info("chatsys.task.handed_back")
                return "handed back"
            except Exception as exc:
                dependency = worker.outages.report(exc)
                if dependency is None:
                    log.exception("chatsys.task.crashed")
                    raise
                error = type(exc).__name__
                log.info("chatsys.task.waiting_for", dependency=dependency, error=error)
                try:
                    if await _after_outage(worker, UUID(task_id), dependency):
                        return "handed back"
                except asyncio.CancelledError:
                    # Shutting down while the server is away: the task keeps its row
                    # (running, this worker's), its heartbeat lapses and the sweeper
                    # re-queues it. Returning, as above, lets arq finish its shutdown.
                    log.info("chatsys.task.left_to_the_sweeper")
                    return "left to the sweeper"
                continue
            log.info("chatsys.task.job_done", status=status.value if status else "not claimed")
            return status.value if status else None


async def _after_outage(worker: WorkerContext, task_id: UUID, dependency: str) -> bool:
    """Wait for the servers, then hand the task back if this runner holds it (True)."""
    while True:
        await worker.outages.wait_back("database")
        await worker.outages.wait_back("redis")
        try:
            return await worker.run_task.hand_back(task_id, reason=f"{dependency} unavailable")
        except Exception as exc:
            if worker.outages.report(exc) is None:
                raise
            await asyncio.sleep(0.2)  # away again: wait once more


async def deliver_webhook(ctx: dict[str, Any], delivery_id: str) -> str:
    """A job of the queue-per-attempt design that came before the webhook slots (left in
    Redis by an upgrade): the delivery row is in Postgres and the slots claim it; the
    job only wakes them."""
    slots = context(ctx).webhooks
    if slots is not None:
        slots.due()
    return "claimed from Postgres"


class Maintenance:
    """Every worker relays undispatched outbox entries and re-queues tasks whose runner
    died. Rows are locked with SKIP LOCKED, so any number of workers can do it at once.
    (Webhook deliveries need no relay: the webhook slots claim them from Postgres.)"""

    def __init__(
        self,
        dispatcher: Dispatcher,
        sweeper: RequeueStale,
        *,
        interval: float,
        outages: OutageMonitor | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self._sweeper = sweeper
        self._interval = interval
        self._outages = outages
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> None:
        requeued = await self._sweeper.execute()
        if requeued:
            log.warning("chatsys.task.requeued_stale", tasks=[str(t) for t in requeued])
        relayed = await self._dispatcher.relay()
        if relayed:
            log.info("chatsys.outbox.relayed", entries=relayed)

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:  # a database or Redis blip must not stop the loop
                if self._outages is None or self._outages.report(exc) is None:
                    log.warning("chatsys.worker.maintenance_failed", error=str(exc))
            await asyncio.sleep(self._interval)

    async def resend_lost(self) -> None:
        """Redis is back after an outage: it may have lost the last second of writes (its
        append-only file is synced every second), jobs among them. Re-send the job of
        every task still queued now rather than after the outbox lease; a job Redis kept
        is not duplicated (one job id per outbox entry)."""
        relayed = await self._dispatcher.relay(older_than=0, lease=0)
        if relayed:
            log.info("chatsys.outbox.resent_after_outage", entries=relayed)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="chatsys-maintenance")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
