"""``runs``: one-step runs end to end, against a bare FastAPI endpoint calling the same model.

Processes: the fake OpenAI-compatible provider (``python -m tests.fakes.openai_compat``,
200 ms to the first byte, then 20 tokens), one ``chatsys api``, one ``chatsys worker``
(``CHATSYS_WORKER_TASK_CONCURRENCY=16``), and the baseline: ``baseline_app`` below under
its own uvicorn, whose ``GET /run`` calls the same fake through ``litellm.acompletion``
(streamed) and relays every token to the client as SSE, then ``event: done``.

A chatsys run, as a client does it: ``POST /v1/tasks`` with ``agents: ["assistant"]``,
then ``GET /v1/tasks/{id}/events`` (``Accept: text/event-stream``) read until
``task.succeeded``. ``--clients`` (16) clients, ``--n`` (1000) runs per system; the
baseline phase runs first, then chatsys, same clients, same load generator.

Printed: run p50/p99 (ms, from the POST to the terminal event), added over the model
(chatsys - baseline), runs/s, CPU per run of the worker and of the API process (and of
the baseline server) from ``/proc/<pid>/stat`` utime+stime read before and after the
phase, and late terminal events.

Late terminal events: for each run, the terminal event's arrival at the SSE client (the
wall clock when its frame was parsed) minus its ``ts``. ``ts`` is the event row's
``created_at``, Postgres ``clock_timestamp()`` when the row was written, in the run's last
transaction (lock the task, post the answer, end it, read the webhook targets, append the
event: the last statement before the deliveries and the commit). So ``arrival - ts`` is the
commit-to-arrival delay plus what that transaction does after the append; it never
under-counts, and a run counted late (> 100 ms) had its terminal event arrive at least
that long after its row was written. Same host, same wall clock.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from bench.startup import ROOT, clean_env, free_port, process, say, wait_ready

Table = dict[str, dict[str, float]]
TOKENS = 20
FIRST_BYTE = 0.2
LATE_MS = 100.0
REPLY = " ".join(f"word{i}" for i in range(TOKENS))


# -- the baseline server ---------------------------------------------------------------------


baseline_app = FastAPI()


@baseline_app.get("/readyz")
async def _readyz() -> dict[str, str]:
    return {"status": "ok"}


@baseline_app.get("/run")
async def _run() -> StreamingResponse:
    import litellm  # the same client library the worker uses, imported by this process only

    async def relay() -> AsyncIterator[bytes]:
        answer: Any = await litellm.acompletion(
            model="openai/gpt-4o-mini",
            api_base=os.environ["BENCH_LLM_API_BASE"],
            api_key="sk-bench",
            messages=[{"role": "user", "content": "a one-step run"}],
            stream=True,
        )
        async for chunk in answer:
            text = chunk.choices[0].delta.content if chunk.choices else None
            if text:
                yield b"event: token\ndata: " + orjson.dumps({"text": text}) + b"\n\n"
        yield b"event: done\ndata: {}\n\n"

    return StreamingResponse(relay(), media_type="text/event-stream")


# -- measuring -------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)  # ms, per run
    late: list[float] = field(default_factory=list)  # ms, terminal arrival - its ts, per run
    slow: list[str] = field(default_factory=list)  # tasks whose terminal event came > 1 s late
    elapsed: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # seconds per process name

    def rate(self) -> float:
        return len(self.latencies) / self.elapsed


async def _sse(answer: httpx.Response) -> AsyncIterator[tuple[str, bytes]]:
    kind = ""
    async for line in answer.aiter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            yield kind, line[6:].encode()


async def _chatsys_run(http: httpx.AsyncClient, api: str, index: int) -> tuple[float, float, str]:
    started = time.perf_counter()
    body = {"input": f"a one-step run number {index}", "agents": ["assistant"]}
    answer = await http.post(f"{api}/v1/tasks", json=body)
    if answer.status_code >= 300:
        raise RuntimeError(f"POST /v1/tasks answered {answer.status_code}: {answer.text[:300]}")
    task_id = answer.json()["id"]
    headers = {"accept": "text/event-stream"}
    async with http.stream("GET", f"{api}/v1/tasks/{task_id}/events", headers=headers) as events:
        async for kind, data in _sse(events):
            if kind in ("task.failed", "task.cancelled"):
                raise RuntimeError(f"task {task_id} ended {kind}: {data[:300]!r}")
            if kind == "task.succeeded":
                arrived = time.time()
                ended = time.perf_counter()
                ts = datetime.fromisoformat(orjson.loads(data)["ts"]).timestamp()
                return (ended - started) * 1000, (arrived - ts) * 1000, task_id
    raise RuntimeError(f"the stream of task {task_id} ended before task.succeeded")


async def _baseline_run(http: httpx.AsyncClient, base: str, index: int) -> tuple[float, float, str]:
    started = time.perf_counter()
    tokens = 0
    async with http.stream("GET", f"{base}/run") as answer:
        async for kind, _ in _sse(answer):
            if kind == "token":
                tokens += 1
            elif kind == "done":
                if tokens == 0:
                    raise RuntimeError("the baseline relayed no token")
                return (time.perf_counter() - started) * 1000, 0.0, ""
    raise RuntimeError("the baseline stream ended before done")


async def _phase(
    kind: str, url: str, fake: str, *, total: int, clients: int, pids: dict[str, int]
) -> Phase:
    phase = Phase()
    run = _chatsys_run if kind == "chatsys" else _baseline_run
    limits = httpx.Limits(max_connections=clients * 2, max_keepalive_connections=clients * 2)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        for _ in range(total + clients):  # every model call answers the same 20 tokens
            (
                await http.post(f"{fake}/_control/queue_reply", json={"text": REPLY})
            ).raise_for_status()
        for index in range(clients):  # warm-up: connections, pools, imports
            await run(http, url, -1 - index)
        counter = iter(range(total))

        async def client() -> None:
            for index in counter:
                latency, late, task_id = await run(http, url, index)
                phase.latencies.append(latency)
                phase.late.append(late)
                if late > 1000:
                    phase.slow.append(task_id)

        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        phase.elapsed = time.perf_counter() - started
        phase.cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    return phase


def _row(ours: float, theirs: float) -> dict[str, float]:
    return {"chatsys": ours, "baseline": theirs, "ratio": ours / theirs if theirs else 0.0}


def _table(ours: Phase, base: Phase) -> Table:
    n = len(ours.latencies)
    p50, p99 = percentile(ours.latencies, 50), percentile(ours.latencies, 99)
    b50, b99 = percentile(base.latencies, 50), percentile(base.latencies, 99)
    late = [d for d in ours.late if d > LATE_MS]
    zero = {"baseline": 0.0, "ratio": 0.0}
    return {
        "run p50 (ms)": _row(p50, b50),
        "run p99 (ms)": _row(p99, b99),
        "added over the model p50 (ms)": {"chatsys": p50 - b50, **zero},
        "added over the model p99 (ms)": {"chatsys": p99 - b99, **zero},
        "runs/s": _row(ours.rate(), base.rate()),
        "worker CPU per run (ms)": {"chatsys": ours.cpu["worker"] / n * 1000, **zero},
        "API CPU per run (ms)": _row(
            ours.cpu["api"] / n * 1000, base.cpu["baseline"] / len(base.latencies) * 1000
        ),
        "terminal event delay p50 (ms)": {"chatsys": statistics.median(ours.late), **zero},
        "terminal event delay max (ms)": {"chatsys": max(ours.late), **zero},
        f"LATE TERMINAL EVENTS (> {LATE_MS:g} ms)": {"chatsys": float(len(late)), **zero},
        "  of which > 1 s": {"chatsys": float(len(ours.slow)), **zero},
        "runs measured": _row(float(n), float(len(base.latencies))),
    }


def _ready(url: str, procs: list[subprocess.Popen[bytes]], tries: int = 4) -> None:
    """``wait_ready`` with more patience: four processes import at once on a busy machine."""
    for attempt in range(tries):
        try:
            wait_ready(url, procs, time.perf_counter())
            return
        except RuntimeError:
            if attempt == tries - 1 or any(p.poll() is not None for p in procs):
                raise


@dataclass(frozen=True, slots=True)
class RunsOptions:
    runs: int = 1000
    clients: int = 16
    keepalive: float = 15.0  # CHATSYS_STREAM_KEEPALIVE (the product default)


def run_runs(database_url: str, redis_url: str, options: RunsOptions) -> Table:
    python = sys.executable
    fake_port, api_port, base_port = free_port(), free_port(), free_port()
    fake = f"http://127.0.0.1:{fake_port}"
    api = f"http://127.0.0.1:{api_port}"
    base = f"http://127.0.0.1:{base_port}"
    env = clean_env(
        CHATSYS_DATABASE_URL=database_url,
        CHATSYS_REDIS_URL=redis_url,
        CHATSYS_API_PORT=str(api_port),
        CHATSYS_MODEL="openai/gpt-4o-mini",
        CHATSYS_LLM_API_BASE=f"{fake}/v1",
        CHATSYS_LLM_API_KEY="sk-bench",
        CHATSYS_WORKER_TASK_CONCURRENCY=str(options.clients),
        CHATSYS_STREAM_KEEPALIVE=str(options.keepalive),
        CHATSYS_LOG_LEVEL="WARNING",
        CHATSYS_LOG_FORMAT="json",
    )
    fake_argv = [python, "-m", "tests.fakes.openai_compat", "--port", str(fake_port)]
    base_argv = [python, "-m", "uvicorn", "bench.runs:baseline_app", "--port", str(base_port),
                 "--log-level", "warning", "--no-access-log"]  # fmt: skip
    base_env = clean_env(BENCH_LLM_API_BASE=f"{fake}/v1")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with (
            process(fake_argv, clean_env(), work / "fake.log") as fake_proc,
            process([python, "-m", "chatsys", "api"], env, work / "api.log") as api_proc,
            process([python, "-m", "chatsys", "worker"], env, work / "worker.log") as worker,
            process(base_argv, base_env, work / "baseline.log") as base_proc,
        ):
            procs = [fake_proc, api_proc, worker, base_proc]
            for url in (f"{fake}/v1/models", f"{base}/readyz", f"{api}/healthz"):
                _ready(url, procs)
            try:
                httpx.post(
                    f"{fake}/_control/configure", json={"latency": FIRST_BYTE}
                ).raise_for_status()
                n, c = options.runs, options.clients
                say(f"runs: baseline, {n} runs, {c} clients")
                theirs = asyncio.run(
                    _phase(
                        "baseline", base, fake, total=n, clients=c, pids={"baseline": base_proc.pid}
                    )
                )
                say(f"runs: chatsys, {n} runs, {c} clients")
                pids = {"api": api_proc.pid, "worker": worker.pid}
                ours = asyncio.run(_phase("chatsys", api, fake, total=n, clients=c, pids=pids))
            except BaseException:
                for name in ("api.log", "worker.log"):
                    say(f"{name} (tail):\n{(work / name).read_text()[-3000:]}")
                raise
            keep = ROOT / "bench" / "results"
            keep.mkdir(parents=True, exist_ok=True)
            for name in ("api", "worker"):
                text = (work / f"{name}.log").read_text()
                (keep / f"runs-{name}.log").write_text(text)
                if errors := text.count("Exception closing connection"):
                    say(f"runs: {errors} 'Exception closing connection' in the {name} log")
    if ours.slow:
        say(f"runs: terminal event > 1 s late for {', '.join(ours.slow[:10])}")
    return _table(ours, theirs)


__all__ = ["RunsOptions", "baseline_app", "run_runs"]
