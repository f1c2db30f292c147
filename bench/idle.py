"""Idle scenario: what chatsys costs while nothing happens, and how soon a worker is up.

``idle``, three figures, each against its target (issue 20, acceptance 5):

- idle cores: ``chatsys dev`` on a fresh data dir (embedded Postgres and Redis, the
  API, one worker), once ``/readyz`` answers and ``SETTLE_SECONDS`` have passed, the
  CPU time of its whole process tree over ``seconds`` (default 60) divided by the
  wall time. Read from ``/proc`` (psutil): user + system time of every process in the
  tree plus the time of the children they reaped, at the end minus at the start, so a
  process that starts or ends in the window (a Postgres autovacuum worker, say)
  counts too. Shown per part (supervisor, api, worker, postgres, redis) and in total.
- worker first heartbeat: ``chatsys worker`` spawned against running Postgres and
  Redis; seconds from the spawn until its id is in the heartbeat set ``/readyz``
  reads, and the CPU time it used until then (wall time on a loaded machine hides
  it). Beside it, seconds until it has answered a ``chatsys.ping`` job enqueued
  before the spawn (its claim loop is up), and the bare arq worker of
  ``bench.baseline`` to its first health-check key, the least an arq worker takes.
- idle worker RSS: that worker's resident memory (with its children)
  ``IDLE_SECONDS`` after its first heartbeat, beside the bare arq worker's.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import redis
from arq.connections import create_pool

from bench.startup import IDLE_SECONDS, ROOT, median, process, rss_mib, say
from chatsys.infra.redis import WORKERS_KEY, arq_redis_settings
from tests.support import clean_env, free_port

SETTLE_SECONDS = 10.0  # after /readyz: start-up's tail (imports, GC, first sweeps) is over
TARGET_CORES = 0.01
TARGET_HEARTBEAT_S = 3.0
TARGET_RSS_MIB = 180.0
START_TIMEOUT = 120.0  # a loaded 2-core machine
PARTS = ("supervisor", "api", "worker", "postgres", "redis")

Table = dict[str, dict[str, float]]


def _part(top: psutil.Process) -> str:
    """Which part of the stack a child of the supervisor (and all below it) is."""
    try:
        name = top.name()
        argv = top.cmdline()
    except psutil.Error:
        return "other"
    if name.startswith("postgres"):
        return "postgres"
    if name.startswith("redis"):
        return "redis"
    for role in ("api", "worker"):
        if role in argv[-1:]:
            return role
    return "other"


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def tree_cpu(root: psutil.Process) -> dict[str, float]:
    """CPU seconds so far of each part of the tree under ``root`` (reaped children
    included)."""
    totals = dict.fromkeys((*PARTS, "other"), 0.0)
    with root.oneshot():
        totals["supervisor"] += _cpu(root)
    for top in root.children():
        part = _part(top)
        for proc in (top, *top.children(recursive=True)):
            try:
                totals[part] += _cpu(proc)
            except psutil.NoSuchProcess:
                continue  # ended: its parent reaped it and counts its time
    return totals


def idle_cores(seconds: float, work: Path) -> dict[str, float]:
    """Cores used by each part of an idle ``chatsys dev`` stack over ``seconds``."""
    port = free_port()
    env = clean_env(CHATSYS_DATA_DIR=str(work / "data"), CHATSYS_LOG_FORMAT="json")
    argv = [sys.executable, "-m", "chatsys", "dev", "--port", str(port)]
    with process(argv, env, work / "dev.log", stop=signal.SIGINT) as dev:
        _ready(f"http://127.0.0.1:{port}/readyz", dev, work / "dev.log")
        time.sleep(SETTLE_SECONDS)
        root = psutil.Process(dev.pid)
        before, started = tree_cpu(root), time.monotonic()
        time.sleep(seconds)
        after, wall = tree_cpu(root), time.monotonic() - started
        if dev.poll() is not None:
            raise RuntimeError(f"chatsys dev exited with {dev.returncode} while idle")
    return {part: (after[part] - before[part]) / wall for part in after}


def _ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    with httpx.Client(timeout=2.0) as client:

        def answers() -> bool:
            try:
                return client.get(url).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(answers, proc, time.perf_counter(), log)


@dataclass(frozen=True, slots=True)
class WorkerStart:
    heartbeat_s: float  # spawn -> in the heartbeat set (baseline: arq's health-check key)
    heartbeat_cpu_s: float  # CPU time it used until then: what load on the machine hides
    ping_s: float  # spawn -> a ping job enqueued before the spawn has its result
    rss_mib: float


def _wait(
    check: Callable[[], object], proc: subprocess.Popen[bytes], started: float, log: Path
) -> float:
    while time.perf_counter() - started < START_TIMEOUT:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}: {_tail(log)}")
        if check():
            return time.perf_counter() - started
        time.sleep(0.01)
    raise RuntimeError(f"{proc.args!r} not started within {START_TIMEOUT:g}s: {_tail(log)}")


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-20:])


def _enqueue_ping(redis_url: str, queue: str) -> str:
    async def enqueue() -> str:
        pool = await create_pool(arq_redis_settings(redis_url), default_queue_name=queue)
        try:
            job = await pool.enqueue_job("chatsys.ping")
            assert job is not None
            return job.job_id
        finally:
            await pool.aclose()

    return asyncio.run(enqueue())


def chatsys_worker_start(database_url: str, redis_url: str, work: Path) -> WorkerStart:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()  # no heartbeat or job left from an earlier run
    env = clean_env(
        CHATSYS_DATABASE_URL=database_url, CHATSYS_REDIS_URL=redis_url, CHATSYS_LOG_FORMAT="json"
    )
    job_id = _enqueue_ping(redis_url, "chatsys:queue")
    started = time.perf_counter()
    argv = [sys.executable, "-m", "chatsys", "worker"]
    log = work / "worker.log"
    with process(argv, env, log) as worker:
        tag = f":{worker.pid}:".encode()

        def beating() -> bool:
            members: list[bytes] = client.zrange(WORKERS_KEY, 0, -1)  # type: ignore[assignment]
            return any(tag in member for member in members)

        beat = _wait(beating, worker, started, log)
        cpu = _cpu(psutil.Process(worker.pid))
        ping = _wait(lambda: client.exists(f"arq:result:{job_id}"), worker, started, log)
        time.sleep(IDLE_SECONDS)
        return WorkerStart(beat, cpu, ping, rss_mib(worker))


def baseline_worker_start(redis_url: str, work: Path) -> WorkerStart:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    started = time.perf_counter()
    argv = [sys.executable, "-m", "bench.baseline"]
    log = work / "baseline.log"
    with process(argv, clean_env(BENCH_REDIS_URL=redis_url), log) as worker:
        beat = _wait(lambda: client.keys("*health-check*"), worker, started, log)
        cpu = _cpu(psutil.Process(worker.pid))
        time.sleep(IDLE_SECONDS)
        return WorkerStart(beat, cpu, float("nan"), rss_mib(worker))


def run_idle(database_url: str, redis_url: str, *, seconds: float, runs: int) -> Table:
    ours: list[WorkerStart] = []
    base: list[WorkerStart] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for index in range(runs):
            say(f"idle: worker start {index + 1}/{runs}: baseline arq worker")
            base.append(baseline_worker_start(redis_url, work))
            say(f"idle: worker start {index + 1}/{runs}: chatsys worker")
            ours.append(chatsys_worker_start(database_url, redis_url, work))
        say(f"idle: chatsys dev, {SETTLE_SECONDS:g}s to settle, then {seconds:g}s idle")
        cores = idle_cores(seconds, work)
    table: Table = {}
    for part in (*PARTS, "other"):
        if part != "other" or cores[part]:
            table[f"idle cores: {part}"] = {"chatsys": cores[part], "target": float("nan")}
    table["idle cores: whole dev stack"] = {
        "chatsys": sum(cores.values()),
        "target": TARGET_CORES,
    }
    for metric, attr, target in (
        ("worker first heartbeat (s)", "heartbeat_s", TARGET_HEARTBEAT_S),
        ("worker CPU until then (s)", "heartbeat_cpu_s", float("nan")),
        ("worker answers a ping (s)", "ping_s", float("nan")),
        ("idle worker RSS (MiB)", "rss_mib", TARGET_RSS_MIB),
    ):
        table[metric] = {
            "chatsys": median([getattr(s, attr) for s in ours]),
            "target": target,
            "bare arq": median([getattr(s, attr) for s in base]),
        }
    for row in table.values():
        row.setdefault("bare arq", float("nan"))
    return table


__all__ = ["ROOT", "run_idle"]
