"""Task-pipeline scenarios, each against a baseline measured in the same run.

``submit``: ``POST /v1/tasks`` on a real ``chatsys api`` process (validation, one
transaction with the task, its event and its outbox entry, then the enqueue)
against a bare FastAPI endpoint doing one asyncpg INSERT; same load generator,
same concurrency. Throughput and p50/p99 latency.

``step``: the time one plan step takes through the executor, role agent and
LiteLLM Router, against one ``litellm.acompletion`` stream consumed directly,
both against the same fake OpenAI-compatible server; the difference is the
executor's overhead per step. Measured with a no-op journal (orchestration
only) and with the durable SQL journal (checkpoints and events in Postgres); the
three are timed in turn, one of each per round, so that drift falls on all three.

``enqueue``: time from enqueueing an arq job to the job starting, with chatsys'
worker settings (poll delay 10 ms) against arq's defaults (0.5 s).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from bench.startup import clean_env, free_port, process, say, wait_ready

Table = dict[str, dict[str, float]]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))
    return ordered[index]


async def _load(
    url: str, body: Callable[[int], dict[str, Any]], total: int, workers: int
) -> tuple[float, list[float]]:
    """POST ``total`` requests with ``workers`` in flight; returns (requests/s, latencies ms)."""
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker(client: httpx.AsyncClient) -> None:
        for index in counter:
            started = time.perf_counter()
            answer = await client.post(url, json=body(index))
            latencies.append((time.perf_counter() - started) * 1000)
            if answer.status_code >= 300:
                raise RuntimeError(f"{url} answered {answer.status_code}: {answer.text[:200]}")

    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await client.post(url, json=body(-1))  # warm up the connection and the server
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(workers)))
        elapsed = time.perf_counter() - started
    return total / elapsed, latencies


def run_submit(
    database_url: str, redis_url: str, *, total: int, concurrency: int, rounds: int = 5
) -> Table:
    """Both servers up side by side; load phases alternate between them ``rounds`` times
    so that both see the same machine conditions. Medians over the rounds."""
    plain = database_url.replace("postgresql+asyncpg://", "postgresql://")
    ours_port, base_port = free_port(), free_port()
    chatsys_env = clean_env(
        CHATSYS_DATABASE_URL=database_url,
        CHATSYS_REDIS_URL=redis_url,
        CHATSYS_API_PORT=str(ours_port),
        CHATSYS_LOG_LEVEL="WARNING",
    )
    base_argv = [sys.executable, "-m", "uvicorn", "bench.baseline:app", "--port",
                 str(base_port), "--log-level", "warning"]  # fmt: skip
    targets = {
        "chatsys": f"http://127.0.0.1:{ours_port}/v1/tasks",
        "baseline": f"http://127.0.0.1:{base_port}/insert",
    }
    rates: dict[str, list[float]] = {"chatsys": [], "baseline": []}
    latencies: dict[str, list[float]] = {"chatsys": [], "baseline": []}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "submit.log"
        with (
            process([sys.executable, "-m", "chatsys", "api"], chatsys_env, log) as api,
            process(base_argv, clean_env(BENCH_DATABASE_URL=plain), log) as base,
        ):
            wait_ready_any(f"http://127.0.0.1:{ours_port}/healthz", api)
            wait_ready_any(f"http://127.0.0.1:{base_port}/readyz", base)
            for round_no in range(rounds):
                for name, url in targets.items():
                    say(f"submit round {round_no + 1}/{rounds}: {name} x{total}, "
                        f"{concurrency} in flight")  # fmt: skip
                    rate, lat = asyncio.run(
                        _load(url, lambda i: {"input": f"write a function number {i}"},
                              total, concurrency)
                    )  # fmt: skip
                    rates[name].append(rate)
                    latencies[name].extend(lat)
    mine, theirs = latencies["chatsys"], latencies["baseline"]
    return {
        "throughput (req/s)": _row(statistics.median(rates["chatsys"]),
                                   statistics.median(rates["baseline"])),
        "p50 latency (ms)": _row(percentile(mine, 50), percentile(theirs, 50)),
        "p99 latency (ms)": _row(percentile(mine, 99), percentile(theirs, 99)),
    }  # fmt: skip


def wait_ready_any(url: str, proc: subprocess.Popen[bytes]) -> None:
    wait_ready(url, [proc], time.perf_counter())


def _row(ours: float, theirs: float) -> dict[str, float]:
    return {"chatsys": ours, "baseline": theirs, "ratio": ours / theirs if theirs else 0.0}


class _NoJournal:
    async def started(self, key: str, attempt: int) -> None:
        return None

    async def retrying(self, key: str, attempt: int, error: str, delay: float) -> None:
        return None

    async def completed(self, key: str, output: Any) -> None:
        return None

    async def failed(self, key: str, attempt: int, error: str) -> None:
        return None

    def sink(self, key: str) -> Any:
        return _NoSink()


class _NoSink:
    async def delta(self, text: str) -> None:
        return None

    async def tool_started(self, call_id: str, name: str, arguments: Mapping[str, Any]) -> None:
        return None

    async def tool_completed(self, call_id: str, name: str, result: str, is_error: bool) -> None:
        return None

    async def approval(self, call_id: str, name: str, arguments: Mapping[str, Any]) -> Any:
        raise AssertionError("no tool here needs an approval")


async def _timed(runs: int, *calls: Callable[[], Awaitable[object]]) -> list[list[float]]:
    """ms per call of each of ``calls``, taken in turn (one of each, ``runs`` times), so
    that the machine's drift falls on all of them alike."""
    for call in calls:
        await call()  # warm-up (client pools, Router, imports)
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(runs):
        for call, out in zip(calls, samples, strict=True):
            started = time.perf_counter()
            await call()
            out.append((time.perf_counter() - started) * 1000)
    return samples


def run_step(database_url: str, *, runs: int) -> Table:
    import litellm

    from chatsys.agents.agent import RoleAgent
    from chatsys.agents.config import GatewayConfig
    from chatsys.agents.gateway import LiteLLMGateway
    from chatsys.agents.tools import BuiltinTools
    from chatsys.domain.planning.executor import PlanExecutor, StepInput
    from chatsys.domain.planning.planner import Planner
    from tests.fakes.openai_compat import run_fake_openai

    plan = Planner().plan_for_agents(["developer"])
    messages = [{"role": "user", "content": "write a function that adds two numbers"}]

    async def measure(base_url: str) -> list[list[float]]:
        config = GatewayConfig(default_model="openai/gpt-4o-mini", api_base=base_url,
                               api_key="sk-bench", num_retries=0)  # fmt: skip
        executor = PlanExecutor(RoleAgent(LiteLLMGateway(config), BuiltinTools()))
        template = StepInput(uuid.uuid4(), "", "developer", "", messages[0]["content"])

        async def direct() -> None:
            stream = await litellm.acompletion(
                model="openai/gpt-4o-mini", api_base=base_url, api_key="sk-bench",
                messages=messages, stream=True, stream_options={"include_usage": True},
            )  # fmt: skip
            async for _ in stream:
                pass

        async def orchestrated() -> None:
            await executor.execute(plan, template, _NoJournal())

        durable = await _durable_step(database_url, executor, plan, template)
        for _ in range(runs + 1):  # each durable step's task row, made before the timing
            await durable.claim_one()  # type: ignore[attr-defined]
        return await _timed(runs, direct, orchestrated, durable)

    with run_fake_openai() as fake:
        say(f"step: {runs} direct litellm calls, {runs} executor steps, {runs} durable steps")
        direct, orchestrated, durable = asyncio.run(measure(fake.base_url))
    base = statistics.median(direct)
    return {
        "one step, p50 (ms)": {"chatsys": statistics.median(orchestrated), "baseline": base,
                               "ratio": statistics.median(orchestrated) / base},
        "added per step, p50 (ms)": {"chatsys": statistics.median(orchestrated) - base,
                                     "baseline": 0.0, "ratio": 0.0},
        "durable step, p50 (ms)": {"chatsys": statistics.median(durable), "baseline": base,
                                   "ratio": statistics.median(durable) / base},
        "durable added per step, p50 (ms)": {"chatsys": statistics.median(durable) - base,
                                             "baseline": 0.0, "ratio": 0.0},
    }  # fmt: skip


async def _durable_step(
    database_url: str, executor: Any, plan: Any, template: Any
) -> Callable[[], Awaitable[object]]:
    """One step with the SQL journal on a task row this runner claimed, real checkpoints.
    Timed: the step only. Its task row is inserted and claimed beforehand, outside the
    timing (that is the submit's and the run's work, measured by ``submit`` and ``runs``)."""
    from chatsys.domain.planning.journal import TaskJournal
    from chatsys.domain.tasks.model import StepRecord, Task, TaskStatus
    from chatsys.infra.db.engine import create_engine, create_session_factory
    from chatsys.infra.db.unit_of_work import SqlUnitOfWork
    from chatsys.infra.settings import DatabaseSettings

    engine = create_engine(DatabaseSettings(), database_url, role="bench")
    sessions = create_session_factory(engine)
    single = create_session_factory(engine, autocommit=True)

    def uow() -> SqlUnitOfWork:
        return SqlUnitOfWork(sessions)

    def single_statement() -> SqlUnitOfWork:  # as the worker writes events alone
        return SqlUnitOfWork(single)

    class Clock:
        def now(self) -> Any:
            from datetime import UTC, datetime

            return datetime.now(UTC)

    claimed: list[Any] = []

    async def claim_one() -> None:
        task = Task(uuid.uuid4(), "bench", "x", TaskStatus.QUEUED, Clock().now())
        async with uow() as u:
            await u.tasks.add(task)
            await u.commit()
        async with uow() as u:
            await u.tasks.claim(task.id, "bench-worker", stale_after=10)
            await u.commit()
        claimed.append(task.id)

    async def step() -> None:
        if not claimed:  # the next task row, claimed before its step is timed
            raise RuntimeError("no claimed task left")
        task_id = claimed.pop()
        record = StepRecord(plan.steps[0].key, "developer", "x", ())
        journal = TaskJournal(uow, Clock(), task_id, "bench-worker", {record.key: record},
                              single_statement=single_statement)  # fmt: skip
        await executor.execute(plan, template, journal)

    step.claim_one = claim_one  # type: ignore[attr-defined]
    return step


async def _enqueue_latency(redis_url: str, queue: str, jobs: int) -> list[float]:
    from arq.connections import create_pool

    from chatsys.infra.redis import arq_redis_settings

    pool = await create_pool(arq_redis_settings(redis_url), default_queue_name=queue)
    client = aioredis.Redis.from_url(redis_url)
    try:
        for index in range(jobs):
            await pool.enqueue_job("stamp", time.time(), _job_id=f"bench-{queue}-{index}")
            await asyncio.sleep(0.02)
        for _ in range(600):  # at most 30 s for the last jobs to start
            if await client.llen(f"bench:{queue}:lags") >= jobs:
                break
            await asyncio.sleep(0.05)
        raw = await client.lrange(f"bench:{queue}:lags", 0, -1)
    finally:
        await pool.aclose()
        await client.aclose()
    return [float(v) * 1000 for v in raw]


def run_enqueue(redis_url: str, *, jobs: int) -> Table:
    from chatsys.infra.settings import WorkerSettings

    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "enqueue.log"
        for name, delay in (("chatsys", WorkerSettings().poll_delay), ("baseline", 0.5)):
            queue = f"bench-{name}-{uuid.uuid4().hex[:6]}"
            env = clean_env(BENCH_REDIS_URL=redis_url, BENCH_QUEUE=queue,
                            BENCH_POLL_DELAY=str(delay))  # fmt: skip
            with process([sys.executable, "-m", "bench.baseline", "stamp"], env, log):
                time.sleep(2.0)  # let the worker start polling
                say(f"enqueue: {jobs} jobs, poll delay {delay}s")
                results[name] = asyncio.run(_enqueue_latency(redis_url, queue, jobs))
    return {
        "enqueue to start, p50 (ms)": _row(percentile(results["chatsys"], 50),
                                           percentile(results["baseline"], 50)),
        "enqueue to start, p99 (ms)": _row(percentile(results["chatsys"], 99),
                                           percentile(results["baseline"], 99)),
    }  # fmt: skip


__all__ = ["run_enqueue", "run_step", "run_submit"]
