"""``backlog``: do pending webhook deliveries to dead receivers delay new tasks?

Real processes: one ``chatsys api``, one ``chatsys worker`` with its default settings
(the task queue and the webhook slots, the per-receiver in-flight cap; only
``CHATSYS_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=true`` so that loopback receivers may be
called), the fake OpenAI-compatible server as its own process.

Phases, same run, same processes:

1. *no backlog*: ``probes`` tasks are submitted (``POST /v1/tasks``) one every
   ``spacing`` s; each one's enqueue-to-start is its ``started_at`` minus its
   ``created_at`` (written just before its job is enqueued);
2. ``deliveries`` webhook deliveries are made pending: ended tasks, each with a
   ``webhook_url`` and one delivery row due now (written in bulk with SQL, as
   ``Callbacks.record`` would write them, so that 10,000 take seconds, not the
   quarter of an hour 10,000 ``finish_task`` transactions took on a loaded 2-core
   machine); the worker's webhook slots find them there, as they find any delivery
   written by another process. The URLs go round-robin to ``hanging`` receivers
   that accept, read the request and never answer (each attempt waits for the 15 s
   timeout);
3. *backlog*: the same probes again, while the deliveries are still pending (their
   count at the start and end of the phase is printed): the issue's target;
4. *closed port*: a fifth as many deliveries again, to one closed port (connection
   refused, retried on the schedule: attempt 2 is due 5 s after attempt 1), and the
   probes a third time while the worker makes those attempts (thousands in the
   phase, in the same process as the task runs); then the deliveries are left to run
   until ``observe`` s after they were made, for attempt 2s to come.

Reported: p50/p99 enqueue-to-start in each phase and their ratio to the first (target
p50 <= 1.2x for phase 3), and how late attempt 2 of a delivery came: the gap from the
end of attempt 1 to the start of attempt 2 minus the nominal 5 s (the schedule's jitter
is +/- 0.5 s), for the closed port and for the hanging receivers apart. A hanging receiver only ever
has ``CHATSYS_WEBHOOKS_MAX_IN_FLIGHT_PER_ENDPOINT`` attempts under way (each 15 s), so
its deliveries queue behind each other by design; the closed port is the one where a
schedule can be kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import httpx
from pydantic import SecretStr
from sqlalchemy import text

from bench.startup import clean_env, free_port, process, say, wait_ready
from chatsys.bootstrap import Resources
from chatsys.domain.webhooks.fairness import receiver_of
from chatsys.domain.webhooks.model import new_secret
from chatsys.infra.settings import DatabaseSettings, RedisSettings, Settings, WebhookSettings
from tests.webhook_receiver import Receiver

Table = dict[str, dict[str, float]]
ATTEMPT_2_DUE = 5.0  # the default retry schedule: attempt 2 five seconds after attempt 1


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass(frozen=True, slots=True)
class Stack:
    """The processes of a scenario: where to reach them."""

    api: str
    llm: str
    database_url: str
    redis_url: str


@contextlib.contextmanager
def chatsys_stack(
    database_url: str, redis_url: str, work: Path, *, workers: int = 1, **env: str
) -> Iterator[Stack]:
    """Fake LLM, ``chatsys api`` and ``workers`` ``chatsys worker`` processes, ready."""
    llm_port, api_port = free_port(), free_port()
    llm = f"http://127.0.0.1:{llm_port}/v1"
    common = clean_env(
        CHATSYS_DATABASE_URL=database_url,
        CHATSYS_REDIS_URL=redis_url,
        CHATSYS_API_PORT=str(api_port),
        CHATSYS_MODEL="openai/gpt-4o-mini",
        CHATSYS_LLM_API_BASE=llm,
        CHATSYS_LLM_API_KEY="sk-bench",
        CHATSYS_WEBHOOKS_ALLOW_PRIVATE_NETWORKS="true",
        CHATSYS_LOG_LEVEL="WARNING",
        **env,
    )
    python = sys.executable
    with contextlib.ExitStack() as stack:
        fake = stack.enter_context(
            process([python, "-m", "tests.fakes.openai_compat", "--port", str(llm_port)],
                    clean_env(), work / "llm.log")
        )  # fmt: skip
        api = stack.enter_context(process([python, "-m", "chatsys", "api"], common,
                                          work / "api.log"))  # fmt: skip
        procs = [fake, api]
        for n in range(workers):
            procs.append(
                stack.enter_context(
                    process([python, "-m", "chatsys", "worker"], common, work / f"worker{n}.log")
                )
            )
        base = f"http://127.0.0.1:{api_port}"
        for tries_left in (2, 1, 0):  # a loaded 2-core machine: up to three minutes
            try:
                wait_ready(f"{base}/readyz", procs, time.perf_counter())
                break
            except RuntimeError:
                if not tries_left:
                    raise RuntimeError(f"not ready: {httpx.get(f'{base}/readyz').text}") from None
        yield Stack(base, llm, database_url, redis_url)


async def submit(client: httpx.AsyncClient, base: str, text_: str, **fields: str) -> UUID:
    answer = await client.post(f"{base}/v1/tasks", json={"input": text_, **fields})
    if answer.status_code >= 300:
        raise RuntimeError(f"POST /v1/tasks answered {answer.status_code}: {answer.text[:200]}")
    return UUID(answer.json()["id"])


async def start_lags(resources: Resources, ids: list[UUID], *, within: float = 300) -> list[float]:
    """Seconds from each task's ``created_at`` to its ``started_at``, once all started."""
    deadline = time.monotonic() + within
    query = text("SELECT created_at, started_at FROM tasks WHERE id = ANY(:ids)")
    while True:
        async with resources.engine.connect() as conn:
            rows = (await conn.execute(query, {"ids": ids})).all()
        if all(r.started_at is not None for r in rows) and len(rows) == len(ids):
            return [(r.started_at - r.created_at).total_seconds() for r in rows]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{sum(r.started_at is None for r in rows)} tasks never started")
        await asyncio.sleep(0.5)


async def warm_up(stack: Stack, resources: Resources, *, runs: int = 3) -> None:
    """A few tasks run to their end first: a fresh worker's first runs (cold imports and
    caches) are not the figure."""
    say("warm-up: the worker's first runs")
    async with httpx.AsyncClient(timeout=30) as client:
        ids = [await submit(client, stack.api, f"warm up {n}") for n in range(runs)]
    query = text("SELECT count(*) FROM tasks WHERE id = ANY(:ids) AND finished_at IS NOT NULL")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        async with resources.engine.connect() as conn:
            if await conn.scalar(query, {"ids": ids}) == len(ids):
                return
        await asyncio.sleep(0.2)
    raise RuntimeError("the warm-up tasks never finished")


async def _probe(stack: Stack, resources: Resources, probes: int, spacing: float) -> list[float]:
    ids = []
    async with httpx.AsyncClient(timeout=30) as client:
        for n in range(probes):
            ids.append(await submit(client, stack.api, f"write a function number {n}"))
            await asyncio.sleep(spacing)
    return await start_lags(resources, ids)


async def _make_backlog(resources: Resources, urls: list[str], count: int) -> None:
    """``count`` ended tasks, each with one pending delivery due now to ``urls[n % len]``,
    written in bulk (the rows ``Callbacks.record`` writes, not one transaction per task):
    the webhook slots find them in Postgres."""
    tasks = text(
        "INSERT INTO tasks (id, owner, input, status, webhook_url, webhook_secret, finished_at)"
        " SELECT gen_random_uuid(), 'bench', 'backlog ' || n, 'cancelled',"
        " (CAST(:urls AS text[]))[1 + n % cardinality(CAST(:urls AS text[]))], :secret, now()"
        " FROM generate_series(0, :count - 1) AS n RETURNING id, webhook_url"
    )
    deliveries = text(
        "INSERT INTO webhook_deliveries (id, webhook_id, owner, task_id, event_type, url,"
        " receiver, body, status, next_attempt_at)"
        " SELECT d, 'msg_' || replace(d::text, '-', ''), 'bench', t,"
        " 'task.cancelled', u, r, :body, 'pending', now()"
        " FROM (SELECT gen_random_uuid() AS d, t, u, r FROM unnest(CAST(:ids AS uuid[]),"
        " CAST(:urls AS text[]), CAST(:receivers AS text[])) AS x(t, u, r)) AS s RETURNING id"
    )
    body = '{"type":"task.cancelled","data":{"task":{"status":"cancelled"}}}'
    async with resources.engine.begin() as conn:
        made = (await conn.execute(tasks, {"urls": urls, "secret": new_secret(),
                                           "count": count})).all()  # fmt: skip
        ids = [row.id for row in made]
        hooks = [row.webhook_url for row in made]
        receivers = [receiver_of(None, url) for url in hooks]
        await conn.execute(
            deliveries, {"ids": ids, "urls": hooks, "receivers": receivers, "body": body}
        )


async def _pending(resources: Resources) -> int:
    async with resources.engine.connect() as conn:
        found = await conn.scalar(
            text(
                "SELECT count(*) FROM webhook_deliveries WHERE status IN ('pending', 'delivering')"
            )
        )
    return int(found or 0)


async def _attempt_2_lateness(resources: Resources, closed_url: str) -> dict[str, list[float]]:
    """Per kind of receiver: start of attempt 2 - end of attempt 1 - 5 s, in seconds."""
    query = text(
        "SELECT d.url, a1.attempted_at AS end1, a2.attempted_at AS end2, a2.latency_ms AS ms2"
        " FROM webhook_attempts a1 JOIN webhook_attempts a2"
        " ON a2.delivery_id = a1.delivery_id AND a2.number = 2 AND a1.number = 1"
        " JOIN webhook_deliveries d ON d.id = a1.delivery_id"
    )
    found: dict[str, list[float]] = {"closed port": [], "hanging": []}
    async with resources.engine.connect() as conn:
        for row in (await conn.execute(query)).all():
            gap = (row.end2 - row.end1).total_seconds() - row.ms2 / 1000
            kind = "closed port" if row.url.startswith(closed_url) else "hanging"
            found[kind].append(gap - ATTEMPT_2_DUE)
    return found


async def _attempts(resources: Resources) -> int:
    async with resources.engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM webhook_attempts")) or 0)


async def _clear(settings: Settings) -> None:
    """The backlog would be worked on by the next scenario's workers: end it."""
    resources = await Resources.open(settings, role="bench")
    try:
        async with resources.engine.begin() as conn:
            await conn.execute(
                text("UPDATE webhook_deliveries SET status = 'failed', finished_at = now(),"
                     " lease_until = NULL WHERE status IN ('pending', 'delivering')")
            )  # fmt: skip
        await resources.redis.delete(settings.worker.webhook_queue_name)
    finally:
        await resources.close()


def run_backlog(
    database_url: str, redis_url: str, *, deliveries: int = 10_000, hanging: int = 4,
    probes: int = 40, spacing: float = 0.5, observe: float = 90.0,
) -> Table:  # fmt: skip
    settings = Settings(
        database=DatabaseSettings(url=SecretStr(database_url)),
        redis=RedisSettings(url=SecretStr(redis_url)),
        webhooks=WebhookSettings(allow_private_networks=True),
    )
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    async def measure(
        stack: Stack,
    ) -> tuple[list[float], list[float], list[float], dict[str, list[float]]]:
        receivers = [Receiver(hang=True) for _ in range(hanging)]
        async with contextlib.AsyncExitStack() as exits:
            for receiver in receivers:
                await exits.enter_async_context(receiver)
            resources = await Resources.open(settings, role="bench")
            exits.push_async_callback(resources.close)
            await warm_up(stack, resources)
            say(f"backlog: {probes} tasks, one every {spacing} s, no delivery pending")
            before = await _probe(stack, resources, probes, spacing)
            hung = [f"{r.url}/hook" for r in receivers]
            say(f"backlog: making {deliveries} deliveries pending to {hanging} hanging "
                "receivers")  # fmt: skip
            started = time.monotonic()
            await _make_backlog(resources, hung, deliveries)
            say(
                f"backlog: made in {time.monotonic() - started:.1f} s; "
                f"{await _pending(resources)} pending, {await _attempts(resources)} attempts made"
            )
            say(f"backlog: {probes} tasks, one every {spacing} s, under the backlog")
            under = await _probe(stack, resources, probes, spacing)
            refused = deliveries // 5
            say(f"backlog: and {refused} more to a closed port (refused, retried in 5 s)")
            started = time.monotonic()
            await _make_backlog(resources, [f"{closed}/hook"], refused)
            say(f"backlog: {probes} tasks, one every {spacing} s, while those are attempted")
            busy = await _probe(stack, resources, probes, spacing)
            await asyncio.sleep(max(0.0, observe - (time.monotonic() - started)))
            say(
                f"backlog: {await _pending(resources)} deliveries still pending, "
                f"{await _attempts(resources)} attempts made; "
                f"{sum(len(r.received) for r in receivers)} requests reached the hanging receivers"
            )
            late = await _attempt_2_lateness(resources, closed)
            return before, under, busy, late

    with tempfile.TemporaryDirectory() as tmp, chatsys_stack(database_url, redis_url,
                                                               Path(tmp)) as stack:  # fmt: skip
        before, under, busy, late = asyncio.run(measure(stack))
    asyncio.run(_clear(settings))

    def row(ours: float, base: float) -> dict[str, float]:
        return {"backlog": ours, "none": base, "ratio": ours / base if base else 0.0}

    table: Table = {
        "enqueue to start, p50 (ms)": row(percentile(under, 50) * 1000,
                                          percentile(before, 50) * 1000),
        "enqueue to start, p99 (ms)": row(percentile(under, 99) * 1000,
                                          percentile(before, 99) * 1000),
        "enqueue to start, mean (ms)": row(statistics.mean(under) * 1000,
                                           statistics.mean(before) * 1000),
        "+ closed port being retried, p50 (ms)": row(percentile(busy, 50) * 1000,
                                                     percentile(before, 50) * 1000),
        "+ closed port being retried, p99 (ms)": row(percentile(busy, 99) * 1000,
                                                     percentile(before, 99) * 1000),
    }  # fmt: skip
    for kind, values in late.items():
        table[f"attempt 2 late, {kind}, p50 (s)"] = _plain(percentile(values, 50))
        table[f"attempt 2 late, {kind}, p99 (s)"] = _plain(percentile(values, 99))
        table[f"attempt 2 made, {kind} (count)"] = _plain(float(len(values)))
    return table


def _plain(value: float) -> dict[str, float]:
    return {"backlog": value, "none": float("nan"), "ratio": float("nan")}
