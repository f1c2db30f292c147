"""A live worker whose event loop is busy keeps its task (no false takeover). Real
processes: the API, two workers, the fake LLM, embedded servers; the settings are the
defaults (liveness every 1 s, TTL 3 s, grace 2 s, backstop 10 s). That a dead worker's
task resumes within seconds is the chaos suite's (tests/chaos: worker SIGKILL x5)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest

from tests.fakes.openai_compat import RunningFake, run_fake_openai
from tests.support import (
    ROOT,
    chatsys,
    clean_env,
    eventually_sync,
    free_port,
    plain_dsn,
    terminating,
    wait_ready,
)

pytestmark = pytest.mark.timeout(400)

REQUEST = (
    "Implement a distributed rate limiter service in Go backed by Redis, used by all our "
    "microservices, with per-tenant quotas and an admin REST API"
)
BUSY_SECONDS = 6.0  # twice the liveness TTL, three times the grace, under the backstop


@pytest.fixture
def llm() -> Iterator[RunningFake]:
    with run_fake_openai() as running:
        running.fake.latency = 0.6
        yield running


def _env(database_url: str, redis_url: str, port: int, llm: RunningFake) -> dict[str, str]:
    return clean_env(
        CHATSYS_DATABASE_URL=database_url,
        CHATSYS_REDIS_URL=redis_url,
        CHATSYS_API_PORT=str(port),
        CHATSYS_MODEL="openai/gpt-4o-mini",
        CHATSYS_LLM_API_BASE=llm.base_url,
        CHATSYS_LLM_API_KEY="sk-test",
        CHATSYS_WORKER_HEARTBEAT_INTERVAL="0.5",  # /readyz's worker count, not takeovers
        CHATSYS_WORKER_HEARTBEAT_TTL="2",
        CHATSYS_LOG_FORMAT="json",
        BUSY_SECONDS=str(BUSY_SECONDS),
    )


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``chatsys worker`` with the SIGUSR1 hook of ``tests.e2e.busy_worker``."""
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.busy_worker"],
            env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
        )  # fmt: skip


def _events(base: str, task_id: str) -> list[dict[str, Any]]:
    page = httpx.get(f"{base}/v1/tasks/{task_id}/events", params={"limit": 1000}).json()
    items: list[dict[str, Any]] = page["items"]
    return items


def _of_type(base: str, task_id: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in _events(base, task_id) if e["type"] == kind]


def _completed(base: str, task_id: str) -> list[str]:
    return [e["data"]["step"] for e in _of_type(base, task_id, "step.completed")]


def _status(base: str, task_id: str) -> str:
    status: str = httpx.get(f"{base}/v1/tasks/{task_id}").json()["status"]
    return status


def _workers(base: str) -> int:
    body = httpx.get(f"{base}/readyz").json()
    workers: int = body["components"]["worker"]["info"].get("workers", 0)
    return workers


def _calls(llm: RunningFake, marker: str, step: str) -> int:
    """Calls the fake provider had for this task's (``marker`` in its request) step."""
    with llm.fake._lock:
        return sum(1 for c in llm.fake.calls if marker in c.last_user and c.step == step)


def _runner_pid(base: str, task_id: str) -> int:
    started = _of_type(base, task_id, "task.started")[-1]
    return int(started["data"]["worker"].split(":")[1])  # host:pid:nonce


def _submit(base: str, marker: str) -> str:
    body = httpx.post(f"{base}/v1/tasks", json={"input": f"{REQUEST} ({marker})"}).json()
    task_id: str = body["id"]
    return task_id


async def _lease_age(database_url: str, task_id: str) -> float:
    conn = await asyncpg.connect(plain_dsn(database_url))
    try:
        age = await conn.fetchval(
            "SELECT extract(epoch FROM now() - heartbeat_at) FROM tasks WHERE id = $1::uuid",
            task_id,
        )
    finally:
        await conn.close()
    return float(age or 0)


def test_a_worker_whose_event_loop_is_busy_for_six_seconds_keeps_its_task(
    database_url: str, redis_url: str, llm: RunningFake, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(database_url, redis_url, port, llm)
    log = tmp_path / "processes.log"
    marker = uuid4().hex[:8]
    with (
        terminating(chatsys("api", env=env, log=log)) as api,
        terminating(_worker(env, log)) as one,
        terminating(_worker(env, log)) as two,
    ):
        wait_ready(base, 90, proc=api, log=log)
        eventually_sync(lambda: _workers(base) == 2, within=60, every=0.1,
                        message="waiting for both workers")  # fmt: skip
        task_id = _submit(base, marker)
        eventually_sync(lambda: len(_completed(base, task_id)) >= 1, within=60, every=0.05,
                        message="waiting for a step to complete")  # fmt: skip
        runner = one if one.pid == _runner_pid(base, task_id) else two
        runner.send_signal(signal.SIGUSR1)  # its loop is busy for BUSY_SECONDS from now
        quietest = 0.0
        deadline = time.monotonic() + BUSY_SECONDS + 2
        while time.monotonic() < deadline:  # the lease goes quiet past the grace...
            quietest = max(quietest, asyncio.run(_lease_age(database_url, task_id)))
            time.sleep(0.2)
        eventually_sync(lambda: _status(base, task_id) == "succeeded", within=60, every=0.1,
                        message="waiting for the task to succeed")  # fmt: skip
        events = _events(base, task_id)
        steps = httpx.get(f"{base}/v1/tasks/{task_id}").json()["steps"]
    print(f"\nbusy runner: its lease was quiet for up to {quietest:.2f} s; no takeover")
    assert "task.requeued" not in [e["type"] for e in events]  # nobody took over, though
    assert quietest > 5, quietest  # its lease was quiet long past the grace and the TTL
    assert len([e for e in events if e["type"] == "task.started"]) == 1
    for step in steps:  # every step ran once, on the one runner
        assert _calls(llm, marker, step["key"]) == 1, step["key"]
