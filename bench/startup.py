"""Startup scenarios: how long until the service answers, and what it costs at rest.

``startup``: spawn ``chatsys api`` and ``chatsys worker`` against running
Postgres and Redis, time until ``/readyz`` answers 200, then measure the idle
RSS of each process. Baseline, measured the same way in the same run: a bare
FastAPI app under uvicorn (its ``/readyz`` returns 200 at once) and a bare arq
worker with one trivial function.

``dev``: ``chatsys dev`` on a fresh data dir (initdb included) and again on the
same data dir (warm), time to ``/readyz`` 200.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import redis

from tests.support import clean_env, free_port

ROOT = Path(__file__).resolve().parents[1]
__all__ = ["clean_env", "free_port"]
READY_TIMEOUT = 60.0
IDLE_SECONDS = 2.0
MIB = 1024 * 1024


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


@contextmanager
def process(
    argv: list[str], env: dict[str, str], log: Path, *, stop: int = signal.SIGTERM
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a command for the duration of the block; stop it (then kill it) on the way out."""
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(stop)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def wait_ready(url: str, procs: list[subprocess.Popen[bytes]], started: float) -> float:
    """Seconds from ``started`` until ``url`` answers 200."""
    with httpx.Client(timeout=2.0) as client:
        while time.perf_counter() - started < READY_TIMEOUT:
            for proc in procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
            try:
                if client.get(url).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    raise RuntimeError(f"{url} not ready within {READY_TIMEOUT:g}s")


def rss_mib(proc: subprocess.Popen[bytes]) -> float:
    """Resident memory of a process and its children, in MiB."""
    root = psutil.Process(proc.pid)
    total = root.memory_info().rss
    for child in root.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / MIB


@dataclass(frozen=True, slots=True)
class StartupSample:
    ready_s: float
    api_mib: float
    worker_mib: float


def _start_pair(
    api_argv: list[str], worker_argv: list[str], env: dict[str, str], port: int, log: Path
) -> StartupSample:
    started = time.perf_counter()
    with process(api_argv, env, log) as api, process(worker_argv, env, log) as worker:
        ready = wait_ready(f"http://127.0.0.1:{port}/readyz", [api, worker], started)
        time.sleep(IDLE_SECONDS)
        return StartupSample(ready, rss_mib(api), rss_mib(worker))


def chatsys_sample(database_url: str, redis_url: str, work: Path) -> StartupSample:
    redis.Redis.from_url(redis_url).flushdb()  # no heartbeat left from an earlier run
    port = free_port()
    env = clean_env(
        CHATSYS_DATABASE_URL=database_url,
        CHATSYS_REDIS_URL=redis_url,
        CHATSYS_API_PORT=str(port),
        CHATSYS_WORKER_HEARTBEAT_INTERVAL="0.5",
        CHATSYS_LOG_FORMAT="json",
    )
    python = sys.executable
    return _start_pair(
        [python, "-m", "chatsys", "api"],
        [python, "-m", "chatsys", "worker"],
        env,
        port,
        work / "chatsys.log",
    )


def baseline_sample(redis_url: str, work: Path) -> StartupSample:
    redis.Redis.from_url(redis_url).flushdb()
    port = free_port()
    env = clean_env(BENCH_REDIS_URL=redis_url)
    python = sys.executable
    return _start_pair(
        [python, "-m", "uvicorn", "bench.baseline:app", "--port", str(port), "--log-level",
         "warning"],
        [python, "-m", "bench.baseline"],
        env,
        port,
        work / "baseline.log",
    )  # fmt: skip


def dev_start(data_dir: Path, log: Path) -> float:
    port = free_port()
    env = clean_env(CHATSYS_DATA_DIR=str(data_dir), CHATSYS_LOG_FORMAT="json")
    argv = [sys.executable, "-m", "chatsys", "dev", "--port", str(port)]
    started = time.perf_counter()
    with process(argv, env, log, stop=signal.SIGINT) as dev:
        return wait_ready(f"http://127.0.0.1:{port}/readyz", [dev], started)


def median(values: list[float]) -> float:
    return statistics.median(values)


def run_startup(runs: int, database_url: str, redis_url: str) -> dict[str, dict[str, float]]:
    ours: list[StartupSample] = []
    base: list[StartupSample] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for index in range(runs):
            say(f"startup run {index + 1}/{runs}: baseline")
            base.append(baseline_sample(redis_url, work))
            say(f"startup run {index + 1}/{runs}: chatsys api + worker")
            ours.append(chatsys_sample(database_url, redis_url, work))
    results: dict[str, dict[str, float]] = {}
    for name, attr in (
        ("time to /readyz 200 (s)", "ready_s"),
        ("API RSS at idle (MiB)", "api_mib"),
        ("worker RSS at idle (MiB)", "worker_mib"),
    ):
        mine = median([getattr(s, attr) for s in ours])
        theirs = median([getattr(s, attr) for s in base])
        results[name] = {"chatsys": mine, "baseline": theirs, "ratio": mine / theirs}
    return results


def run_dev() -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        log = Path(tmp) / "dev.log"
        say("dev: cold start (fresh data dir, initdb)")
        cold = dev_start(data_dir, log)
        say("dev: warm start (same data dir)")
        warm = dev_start(data_dir, log)
    return {"chatsys dev to /readyz 200 (s)": {"cold": cold, "warm": warm, "ratio": warm / cold}}
