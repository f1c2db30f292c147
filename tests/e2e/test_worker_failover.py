"""A worker dies (SIGKILL) or is stopped (SIGTERM) in the middle of a multi-step task."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openai_compat import RunningFake, run_fake_openai
from tests.support import (
    chatsys,
    clean_env,
    eventually_sync,
    free_port,
    terminating,
    wait_ready,
)

REQUEST = (
    "Implement a distributed rate limiter service in Go backed by Redis, used by all our "
    "microservices, with per-tenant quotas and an admin REST API"
)


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
        CHATSYS_WORKER_HEARTBEAT_INTERVAL="0.5",
        CHATSYS_WORKER_TASK_STALE_AFTER="3",
        CHATSYS_WORKER_MAINTENANCE_INTERVAL="1",
        CHATSYS_LOG_FORMAT="json",
    )


def _events(base: str, task_id: str) -> list[dict[str, Any]]:
    page = httpx.get(f"{base}/v1/tasks/{task_id}/events", params={"limit": 1000}).json()
    items: list[dict[str, Any]] = page["items"]
    return items


def _completed_steps(base: str, task_id: str) -> list[str]:
    return [e["data"]["step"] for e in _events(base, task_id) if e["type"] == "step.completed"]


def _status(base: str, task_id: str) -> str:
    status: str = httpx.get(f"{base}/v1/tasks/{task_id}").json()["status"]
    return status


def _workers(base: str) -> int:
    body = httpx.get(f"{base}/readyz").json()
    workers: int = body["components"]["worker"]["info"].get("workers", 0)
    return workers


def test_a_killed_worker_s_task_resumes_on_a_new_worker_without_repeating_steps(
    database_url: str, redis_url: str, llm: RunningFake, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(database_url, redis_url, port, llm)
    log = tmp_path / "processes.log"
    with terminating(chatsys("api", env=env, log=log)) as api:
        first = chatsys("worker", env=env, log=log)
        with terminating(first):
            wait_ready(base, 90, proc=api, log=log)
            task_id = httpx.post(f"{base}/v1/tasks", json={"input": REQUEST}).json()["id"]
            eventually_sync(
                lambda: len(_completed_steps(base, task_id)) >= 2,
                within=60,
                every=0.1,
                message="waiting for two steps to complete",
            )
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            killed_at = time.monotonic()
            done_before = _completed_steps(base, task_id)
        assert _status(base, task_id) == "running"  # nobody told the database
        with terminating(chatsys("worker", env=env, log=log)):
            eventually_sync(
                lambda: _status(base, task_id) == "succeeded",
                within=60,
                every=0.1,
                message="waiting for the task to succeed",
            )
            recovered_in = time.monotonic() - killed_at
        task = httpx.get(f"{base}/v1/tasks/{task_id}").json()
        log_events = _events(base, task_id)
    assert recovered_in < 30, f"took {recovered_in:.1f}s after the kill"
    assert all(s["status"] == "succeeded" for s in task["steps"])
    for key in done_before:  # completed before the kill: never called again
        assert llm.fake.count(step=key) == 1, (key, llm.fake.count(step=key))
    assert [e["seq"] for e in log_events] == list(range(1, len(log_events) + 1))
    assert "task.requeued" in [e["type"] for e in log_events]
    completed = [e["data"]["step"] for e in log_events if e["type"] == "step.completed"]
    assert sorted(completed) == sorted(s["key"] for s in task["steps"])


def test_a_stopped_worker_hands_its_task_to_another_worker(
    database_url: str, redis_url: str, llm: RunningFake, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(database_url, redis_url, port, llm)
    log = tmp_path / "processes.log"
    with (
        terminating(chatsys("api", env=env, log=log)) as api,
        terminating(chatsys("worker", env=env, log=log)) as one,
        terminating(chatsys("worker", env=env, log=log)) as two,
    ):
        wait_ready(base, 90, proc=api, log=log)
        eventually_sync(
            lambda: _workers(base) == 2, within=60, every=0.1, message="waiting for both workers"
        )
        task_id = httpx.post(f"{base}/v1/tasks", json={"input": REQUEST}).json()["id"]
        eventually_sync(
            lambda: len(_completed_steps(base, task_id)) >= 1,
            within=60,
            every=0.1,
            message="waiting for a step to complete",
        )
        started = next(e for e in _events(base, task_id) if e["type"] == "task.started")
        runner_pid = int(started["data"]["worker"].split(":")[1])  # host:pid:nonce
        runner = one if one.pid == runner_pid else two
        assert runner.pid == runner_pid
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(30) == 0
        stopped_at = time.monotonic()
        eventually_sync(
            lambda: _status(base, task_id) == "succeeded",
            within=60,
            every=0.1,
            message="waiting for the task to succeed",
        )
        finished_in = time.monotonic() - stopped_at
        log_events = _events(base, task_id)

    requeued = [e for e in log_events if e["type"] == "task.requeued"]
    assert requeued[0]["data"]["reason"] == "worker shutting down"
    runners = [e["data"]["worker"] for e in log_events if e["type"] == "task.started"]
    assert len(set(runners)) == 2
    attempts = [e["data"]["attempt"] for e in log_events if e["type"] == "task.started"]
    assert attempts == [1, 1]  # handing back did not spend an attempt
    assert finished_in < 30
