"""``priority``: a high-priority task under a backlog of low ones, and the low ones' share.

Real processes (``bench.backlog.chatsys_stack``): one ``chatsys api``, one ``chatsys
worker`` with its default settings (10 task slots and 2 for high-priority runs only,
``CHATSYS_WORKER_PRIORITY_LEAD`` 60 s), the fake OpenAI-compatible server answering
each call after ``latency`` s so that every slot stays busy.

1. *idle*: ``highs`` high-priority tasks submitted one every ``spacing`` s with no
   other work: their submit-to-start (``started_at - created_at``) is the baseline;
2. ``lows`` low-priority tasks are submitted (16 at a time) and the phase waits until
   every slot runs one;
3. *backlog*: for the same ``highs`` high-priority tasks, one every ``spacing`` s,
   submit-to-start again (target < 1 s), and, in the window from the first of them to
   ``spacing`` s after the last, how many tasks of each priority started: the share of
   low among them shows that low still progresses.

How priority works (``chatsys.infra.queue``): arq takes the job of lowest score (its
enqueue time) first; a normal job's score is its enqueue time minus the lead, a high
one's minus twice the lead. So a high task goes ahead of every low one queued less
than 120 s before it, and a low task is never passed by a high one submitted more than
120 s after it: under a stream of highs that alone fills the slots, low tasks wait up
to twice the lead, then run in their turn. In this scenario the highs come more slowly
than the slots free up, so the lows take the remaining starts.

Found with it, and fixed (``chatsys.infra.arq_worker``):

- arq reads up to ``queue_read_limit`` job ids (its default: 100) per poll and starts
  them in that order as slots free up, so a high task queued after such a read could
  wait behind the low ones read ahead. Reading one id at a time does not fix it (arq
  leaves a running job in the queue: that read finds the running job again and the
  worker runs one task at a time); now a read fills only the slots free before it was
  taken, and a slot freed later goes to the next poll's read.
- That was the rarer delay. Timing each high task against the tasks' ``finished_at``
  showed that nearly every one started in the first slot to free after it was queued:
  the wait was for a slot (all 10 busy with runs of about 2.5 s, which end in bunches),
  up to 1.2-1.7 s. So a high-priority run now has slots of its own beside the task
  slots (``CHATSYS_WORKER_HIGH_PRIORITY_SLOTS``, 2 here: a high task every 1.5 s, each
  run about 2.5 s); low tasks keep their 10 slots, hence their share.

High task submit-to-start in the backlog, p50 / max, on a shared 2-core machine: before,
0.54-0.99 / 1.45-2.48 s (load 1-7); the read fix alone, 0.29-0.33 / 0.98-1.27 s (load
4-6); with the high-priority slots too, 0.02-0.10 / 0.22-0.48 s (load 3-9), the low
share 0.85-0.87 (before 0.79-0.84).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import httpx
import redis.asyncio as aioredis
from pydantic import SecretStr
from sqlalchemy import text

from bench.backlog import Stack, chatsys_stack, percentile, start_lags, submit, warm_up
from bench.startup import say
from chatsys.bootstrap import Resources
from chatsys.infra.settings import DatabaseSettings, RedisSettings, Settings, WorkerSettings

Table = dict[str, dict[str, float]]


async def _running(resources: Resources) -> int:
    async with resources.engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM tasks WHERE status = 'running'"))
                   or 0)  # fmt: skip


async def _highs(
    stack: Stack, resources: Resources, count: int, spacing: float
) -> tuple[list[float], datetime, datetime]:
    ids: list[UUID] = []
    opened = datetime.now(UTC)
    async with httpx.AsyncClient(timeout=30) as client:
        for n in range(count):
            ids.append(await submit(client, stack.api, f"urgent function {n}", priority="high"))
            await asyncio.sleep(spacing)
    closed = datetime.now(UTC)
    return await start_lags(resources, ids), opened, closed


async def _lows(stack: Stack, count: int) -> None:
    numbers = iter(range(count))
    async with httpx.AsyncClient(timeout=30) as client:

        async def one() -> None:
            for n in numbers:
                await submit(client, stack.api, f"someday function {n}", priority="low")

        await asyncio.gather(*(one() for _ in range(16)))


async def _started_between(
    resources: Resources, opened: datetime, closed: datetime
) -> dict[str, int]:
    query = text(
        "SELECT priority, count(*) AS n FROM tasks"
        " WHERE started_at >= :opened AND started_at < :closed GROUP BY priority"
    )
    async with resources.engine.connect() as conn:
        rows = (await conn.execute(query, {"opened": opened, "closed": closed})).all()
    return {str(r.priority): int(r.n) for r in rows}


async def _clear(settings: Settings, redis_url: str) -> None:
    """The lows left queued would be run by the next scenario's workers: end them."""
    resources = await Resources.open(settings, role="bench")
    try:
        async with resources.engine.begin() as conn:
            await conn.execute(
                text("UPDATE tasks SET status = 'cancelled', finished_at = now()"
                     " WHERE status IN ('queued', 'running')")
            )  # fmt: skip
        client = aioredis.Redis.from_url(redis_url)
        with contextlib.suppress(Exception):
            await client.delete(WorkerSettings().queue_name)
        await client.aclose()
    finally:
        await resources.close()


def run_priority(
    database_url: str, redis_url: str, *, lows: int = 500, highs: int = 20,
    spacing: float = 1.5, latency: float = 2.0,
) -> Table:  # fmt: skip
    settings = Settings(
        database=DatabaseSettings(url=SecretStr(database_url)),
        redis=RedisSettings(url=SecretStr(redis_url)),
    )
    slots = WorkerSettings().task_concurrency

    async def measure(stack: Stack) -> tuple[list[float], list[float], dict[str, int]]:
        async with httpx.AsyncClient() as client:
            control = stack.llm.removesuffix("/v1") + "/_control/configure"
            (await client.post(control, json={"latency": latency})).raise_for_status()
        resources = await Resources.open(settings, role="bench")
        try:
            await warm_up(stack, resources)
            say(f"priority: {highs} high tasks, one every {spacing} s, workers idle")
            idle, _, _ = await _highs(stack, resources, highs, spacing)
            say(f"priority: {lows} low tasks queued")
            await _lows(stack, lows)
            deadline = time.monotonic() + 60
            while await _running(resources) < slots and time.monotonic() < deadline:  # noqa: ASYNC110 (polls Postgres)
                await asyncio.sleep(0.2)
            say(f"priority: {await _running(resources)} running; {highs} high tasks, "
                f"one every {spacing} s")  # fmt: skip
            busy, opened, closed = await _highs(stack, resources, highs, spacing)
            started = await _started_between(resources, opened, closed)
            return idle, busy, started
        finally:
            await resources.close()

    with tempfile.TemporaryDirectory() as tmp, chatsys_stack(database_url, redis_url,
                                                               Path(tmp)) as stack:  # fmt: skip
        idle, busy, started = asyncio.run(measure(stack))
    asyncio.run(_clear(settings, redis_url))

    def row(ours: float, base: float) -> dict[str, float]:
        return {"backlog": ours, "idle": base, "ratio": ours / base if base else 0.0}

    def plain(value: float) -> dict[str, float]:
        return {"backlog": value, "idle": float("nan"), "ratio": float("nan")}

    total = sum(started.values())
    return {
        "high: submit to start, p50 (ms)": row(percentile(busy, 50) * 1000,
                                               percentile(idle, 50) * 1000),
        "high: submit to start, max (ms)": row(max(busy) * 1000, max(idle) * 1000),
        "started in the window, high": plain(float(started.get("high", 0))),
        "started in the window, low": plain(float(started.get("low", 0))),
        "low share of starts in the window": plain(started.get("low", 0) / total if total else 0),
    }  # fmt: skip
