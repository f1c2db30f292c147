"""``access``: what authentication and rate limiting cost a request.

Two ``chatsys api`` processes on the same database and Redis, identical but for
``CHATSYS_AUTH_ENABLED`` / ``CHATSYS_LIMITS_ENABLED``: one checks an API key (cached
after the first verification, as in production) and takes a token from the shared
Redis rate limiter on every request; the other does neither. The same load
(``GET /v1/tasks/{id}`` of one existing task, a real read from Postgres) goes to
each in alternating rounds; the ratio of the p50 latencies is the overhead.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.pipeline import Table, _row, percentile, wait_ready_any
from bench.startup import ROOT, clean_env, free_port, process, say


async def _get_load(
    url: str, headers: dict[str, str], total: int, workers: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker(client: httpx.AsyncClient) -> None:
        for _ in counter:
            started = time.perf_counter()
            answer = await client.get(url, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            if answer.status_code != 200:
                raise RuntimeError(f"{url} answered {answer.status_code}: {answer.text[:200]}")

    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        for _ in range(20):  # warm up connections, caches and the server
            await client.get(url, headers=headers)
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(workers)))
        elapsed = time.perf_counter() - started
    return total / elapsed, latencies


def _create_key(env: dict[str, str]) -> str:
    made = subprocess.run(
        [sys.executable, "-m", "chatsys", "keys", "create", "--name", "bench", "--role", "member"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    return made.stdout.strip()


def run_access(
    database_url: str, redis_url: str, *, total: int = 2000, concurrency: int = 8, rounds: int = 5
) -> Table:
    ports = {"with": free_port(), "without": free_port()}
    common = {
        "CHATSYS_DATABASE_URL": database_url,
        "CHATSYS_REDIS_URL": redis_url,
        "CHATSYS_LOG_LEVEL": "WARNING",
        "CHATSYS_LIMITS_MEMBER_REQUESTS": "100000000",  # measured, never hit
    }
    envs = {
        "with": clean_env(**common, CHATSYS_API_PORT=str(ports["with"]),
                          CHATSYS_AUTH_ENABLED="true", CHATSYS_LIMITS_ENABLED="true"),
        "without": clean_env(**common, CHATSYS_API_PORT=str(ports["without"]),
                             CHATSYS_AUTH_ENABLED="false", CHATSYS_LIMITS_ENABLED="false"),
    }  # fmt: skip
    key = _create_key(envs["with"])
    headers = {"with": {"Authorization": f"Bearer {key}"}, "without": {}}
    rates: dict[str, list[float]] = {"with": [], "without": []}
    latencies: dict[str, list[float]] = {"with": [], "without": []}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "access.log"
        with (
            process([sys.executable, "-m", "chatsys", "api"], envs["with"], log) as on,
            process([sys.executable, "-m", "chatsys", "api"], envs["without"], log) as off,
        ):
            wait_ready_any(f"http://127.0.0.1:{ports['with']}/healthz", on)
            wait_ready_any(f"http://127.0.0.1:{ports['without']}/healthz", off)
            made = httpx.post(
                f"http://127.0.0.1:{ports['with']}/v1/tasks",
                json={"input": "a task to read"},
                headers=headers["with"],
                timeout=30,
            )
            made.raise_for_status()
            task_id = made.json()["id"]
            for round_no in range(rounds):
                for name in ("with", "without"):
                    say(f"access round {round_no + 1}/{rounds}: {name} auth + limits, "
                        f"{total} x GET /v1/tasks/{{id}}, {concurrency} in flight")  # fmt: skip
                    url = f"http://127.0.0.1:{ports[name]}/v1/tasks/{task_id}"
                    rate, lat = asyncio.run(_get_load(url, headers[name], total, concurrency))
                    rates[name].append(rate)
                    latencies[name].extend(lat)
    mine, theirs = latencies["with"], latencies["without"]
    return {
        "throughput (req/s)": _row(statistics.median(rates["with"]),
                                   statistics.median(rates["without"])),
        "p50 latency (ms)": _row(percentile(mine, 50), percentile(theirs, 50)),
        "p99 latency (ms)": _row(percentile(mine, 99), percentile(theirs, 99)),
    }  # fmt: skip
