"""The chaos scenarios where a server goes away under load and comes back on its port:
Redis SIGKILLed (no process exits, readiness says why, every task ends within 15 s of
its return), Postgres stopped (the API answers only 503 problems with ``Retry-After``
meanwhile, each process logs the outage once as a warning, no task fails). The stack
runs on an embedded server of the scenario's own, which it may kill."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from chatsys.infra.db import migrations
from chatsys.infra.embedded.postgres import EmbeddedPostgres
from chatsys.infra.embedded.redis import EmbeddedRedis
from tests.chaos.audit import Audit
from tests.chaos.scenarios import Ctx, Outcome, finish, marker, requeue_reasons
from tests.chaos.stack import ChaosStack, Followed, pacing
from tests.support import eventually

UNAVAILABLE = "urn:chatsys:problem:dependency-unavailable"
FAST_SWEEP = {"CHATSYS_WORKER_TASK_STALE_AFTER": "3", "CHATSYS_WORKER_MAINTENANCE_INTERVAL": "1"}
RECOVERY_BOUND = 15.0  # the issue's: all tasks ended within 15 s of Redis returning


def lines_of(log: Path, event: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if f'"{event}"' in line]


async def running(stack: ChaosStack, ids: list[str], count: int) -> bool:
    return [await stack.status(i) for i in ids].count("running") >= count


async def all_ready(stack: ChaosStack) -> bool:
    return all([(await c.get("/readyz")).status_code == 200 for c in stack.clients])


async def redis_restart(ctx: Ctx, rounds: int = 1, down: float = 4.0) -> Outcome:
    out = Outcome(f"Redis SIGKILL {down:g} s + restart", rounds, Audit())
    redis = EmbeddedRedis(ctx.workdir / "redis")
    url = await asyncio.to_thread(redis.start)
    followers: list[asyncio.Task[Followed]] = []
    try:
        with pacing(ctx.llm, latency=0.25, chunk_delay=0.0):
            logs = [redis.log_path]
            async with ChaosStack(
                "redis", ctx.database_url, url, ctx.llm, ctx.workdir, FAST_SWEEP, logs
            ) as stack:
                for n in range(rounds):
                    ids = [(await stack.submit(marker("redis", n), api=i % 2))["id"]
                           for i in range(4)]  # fmt: skip
                    followers += [asyncio.create_task(stack.follow(i, prefer=k, within=180))
                                  for k, i in enumerate(ids)]  # fmt: skip
                    await eventually(partial(running, stack, ids, 2), within=60, every=0.1)
                    os.kill(redis.pid or 0, signal.SIGKILL)
                    await _while_redis_is_away(stack, out, down)
                    await asyncio.to_thread(redis.stop)  # reaps the killed process
                    await asyncio.to_thread(redis.start, port=redis.port)
                    back = time.monotonic()
                    await eventually(stack.all_ended, within=90, every=0.2, message="after Redis")
                    out.recovered.append(time.monotonic() - back)
                    await eventually(lambda: all_ready(stack), within=30, every=0.2)
                await finish(stack, followers, out)
                reasons = await requeue_reasons(stack)
                for proc in stack.workers:
                    if not lines_of(proc.log, "chatsys.worker.polling_again"):
                        out.problems.append(f"{proc.name}: no polling_again after the outage")
    finally:
        await asyncio.to_thread(redis.stop)
    if "worker died" in reasons:  # Redis away or just back: nobody taken for dead
        out.problems.append(f"a live worker was taken for dead: {dict(reasons)}")
    if max(out.recovered, default=0) > RECOVERY_BOUND:
        out.problems.append(f"tasks ended {max(out.recovered):.1f} s after Redis returned")
    return out


async def _while_redis_is_away(stack: ChaosStack, out: Outcome, down: float) -> None:
    """Readiness says Redis is down, and why; submitting still works (no Redis needed);
    a new live stream is refused with 503 + Retry-After."""
    killed = time.monotonic()
    while time.monotonic() - killed < down:
        for client in stack.clients:
            answer = await client.get("/readyz")
            redis = answer.json()["components"]["redis"]
            out.answers[answer.status_code] += 1
            if answer.status_code != 503 or redis["status"] != "down" or not redis["detail"]:
                out.problems.append(f"/readyz with Redis away: {answer.status_code} {redis}")
        await asyncio.sleep(0.25)
    during = await stack.submit(marker("during", 0), api=1)
    url = f"/v1/tasks/{during['id']}/events"
    async with stack.clients[0].stream("GET", url, headers={"Accept": "text/event-stream"}) as late:
        if late.status_code != 503 or not (late.headers.get("retry-after") or "").isdigit():
            out.problems.append(f"a new stream with Redis away: {late.status_code}")


async def postgres_stop(ctx: Ctx, rounds: int = 1, down: float = 10.0) -> Outcome:
    out = Outcome(f"Postgres stop {down:g} s + restart", rounds, Audit())
    postgres = EmbeddedPostgres(ctx.workdir / "pg")
    url = await asyncio.to_thread(postgres.start)
    await asyncio.to_thread(migrations.upgrade, url)
    followers: list[asyncio.Task[Followed]] = []
    answers: list[httpx.Response | Exception] = []
    try:
        with pacing(ctx.llm, latency=0.25, chunk_delay=0.0):
            logs = [postgres.log_path]
            async with ChaosStack(
                "postgres", url, ctx.redis_url, ctx.llm, ctx.workdir, FAST_SWEEP, logs
            ) as stack:
                for n in range(rounds):
                    ids = [(await stack.submit(marker("pg", n), api=i % 2))["id"]
                           for i in range(3)]  # fmt: skip
                    followers += [asyncio.create_task(stack.follow(i, prefer=k, within=180))
                                  for k, i in enumerate(ids)]  # fmt: skip
                    await eventually(partial(running, stack, ids, 2), within=60, every=0.1)
                    stop = asyncio.Event()
                    trickles = [asyncio.create_task(_trickle(c, ids[0], stop, answers))
                                for c in stack.clients]  # fmt: skip
                    await asyncio.sleep(0.5)
                    await asyncio.to_thread(postgres.stop)
                    stopped = time.monotonic()
                    await asyncio.sleep(down / 2)
                    midway = await stack.clients[0].get("/readyz")
                    if midway.status_code != 503 or (
                        midway.json()["components"]["postgres"]["status"] != "down"
                    ):
                        out.problems.append(f"/readyz with Postgres away: {midway.text[:300]}")
                    await asyncio.sleep(max(0.0, down - (time.monotonic() - stopped)))
                    await asyncio.to_thread(postgres.start, port=postgres.port)
                    back = time.monotonic()
                    await asyncio.sleep(3)
                    stop.set()
                    await asyncio.gather(*trickles)
                    await eventually(stack.all_ended, within=90, every=0.2, message="after PG")
                    out.recovered.append(time.monotonic() - back)
                    await eventually(lambda: all_ready(stack), within=30, every=0.2)
                await finish(stack, followers, out)
                _check_outage_logs(stack, out, rounds)
    finally:
        await asyncio.to_thread(postgres.stop)
    _check_answers(answers, out)
    return out


async def _trickle(
    http: httpx.AsyncClient,
    task_id: str,
    stop: asyncio.Event,
    into: list[httpx.Response | Exception],
) -> None:
    calls = [
        lambda: http.get("/v1/tasks", params={"limit": 5}),
        lambda: http.post("/v1/conversations", json={"title": "during"}),
        lambda: http.get(f"/v1/tasks/{task_id}"),
    ]
    n = 0
    while not stop.is_set():
        try:
            into.append(await calls[n % len(calls)]())
        except httpx.HTTPError as exc:
            into.append(exc)
        n += 1
        await asyncio.sleep(0.1)


def _check_answers(answers: list[httpx.Response | Exception], out: Outcome) -> None:
    """Only 503 problems with Retry-After while Postgres was away; nothing else failed."""
    for answer in answers:
        if isinstance(answer, Exception):
            out.answers[0] += 1
            out.problems.append(f"a request failed: {answer!r}")
            continue
        out.answers[answer.status_code] += 1
        if answer.status_code == 503:
            retry = answer.headers.get("retry-after") or ""
            kind = answer.headers.get("content-type")
            if not retry.isdigit() or kind != "application/problem+json":
                out.problems.append(f"a 503 without Retry-After or problem: {answer.headers}")
            elif answer.json()["type"] != UNAVAILABLE:
                out.problems.append(f"a 503 of another type: {answer.text[:200]}")
        elif answer.status_code not in (200, 201):
            out.problems.append(f"answered {answer.status_code}: {answer.text[:200]}")
    if not out.answers[503]:
        out.problems.append("no request met the outage")


def _check_outage_logs(stack: ChaosStack, out: Outcome, rounds: int) -> None:
    """One warning per outage per API process, never an unhandled error; no task crashed."""
    for proc in stack.apis:
        text = proc.log.read_text()
        if "chatsys.api.unhandled_error" in text:
            out.problems.append(f"{proc.name}: an unhandled_error")
        started = lines_of(proc.log, "chatsys.outage.started")
        if [(s["level"], s["dependency"]) for s in started] != [("warning", "database")] * rounds:
            out.problems.append(f"{proc.name}: outage lines {started}")
        ended = [e["dependency"] for e in lines_of(proc.log, "chatsys.outage.ended")]
        if ended != ["database"] * rounds:
            out.problems.append(f"{proc.name}: outage ended lines {ended}")
    for proc in stack.workers:
        if "chatsys.task.crashed" in proc.log.read_text():
            out.problems.append(f"{proc.name}: a task crashed")
        if not lines_of(proc.log, "chatsys.outage.started"):
            out.problems.append(f"{proc.name}: no outage line")
