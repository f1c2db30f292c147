"""Redis and Postgres go away under real processes and come back on the same port.

No process exits; every task ends normally; clients get 503 problems with
``Retry-After`` (never a 500); each process logs an outage once; live streams stay
exactly-once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatsys.infra.db import migrations
from chatsys.infra.embedded.postgres import EmbeddedPostgres
from chatsys.infra.embedded.redis import EmbeddedRedis
from tests.fakes.openai_compat import RunningFake, run_fake_openai
from tests.streams import TERMINAL, SseRead, read_sse
from tests.support import chatsys, clean_env, eventually, free_port, terminating, wait_ready

REQUEST = (
    "Implement a distributed rate limiter service in Go backed by Redis, used by all our "
    "microservices, with per-tenant quotas and an admin REST API"
)
ENDED = {"succeeded", "failed", "cancelled"}
UNAVAILABLE = "urn:chatsys:problem:dependency-unavailable"


@pytest.fixture
def llm() -> Iterator[RunningFake]:
    with run_fake_openai() as running:
        running.fake.latency = 0.25
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


def _lines(log: Path, event: str) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text().splitlines():
        if f'"{event}"' in line:
            found.append(json.loads(line))
    return found


async def _events(http: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    page = (await http.get(f"/v1/tasks/{task_id}/events", params={"limit": 1000})).json()
    items: list[dict[str, Any]] = page["items"]
    return items


async def _statuses(http: httpx.AsyncClient, ids: list[str]) -> dict[str, str]:
    return {i: (await http.get(f"/v1/tasks/{i}")).json()["status"] for i in ids}


async def _started(http: httpx.AsyncClient, ids: list[str], count: int) -> bool:
    running = [s for s in (await _statuses(http, ids)).values() if s == "running"]
    return len(running) >= count


async def _check_log_of(http: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    """The task's durable log: gapless, one terminal event, each step completed once."""
    events = await _events(http, task_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), task_id
    assert [e["type"] for e in events if e["type"] in TERMINAL] == ["task.succeeded"], task_id
    task = (await http.get(f"/v1/tasks/{task_id}")).json()
    completed = [e["data"]["step"] for e in events if e["type"] == "step.completed"]
    assert sorted(completed) == sorted(s["key"] for s in task["steps"]), task_id
    return events


async def test_a_redis_restart_under_load_stops_no_process_and_loses_no_event(
    database_url: str, llm: RunningFake, tmp_path: Path
) -> None:
    redis = EmbeddedRedis(tmp_path / "redis")
    redis_url = await asyncio.to_thread(redis.start)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(database_url, redis_url, port, llm)
    logs = {name: tmp_path / f"{name}.log" for name in ("api", "worker-1", "worker-2")}
    try:
        with (
            terminating(chatsys("api", env=env, log=logs["api"])) as api,
            terminating(chatsys("worker", env=env, log=logs["worker-1"])) as one,
            terminating(chatsys("worker", env=env, log=logs["worker-2"])) as two,
        ):
            await asyncio.to_thread(wait_ready, base, 90, proc=api, log=logs["api"])
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:

                async def two_workers() -> bool:
                    body = (await http.get("/readyz")).json()
                    return bool(body["components"]["worker"]["info"].get("workers") == 2)

                await eventually(two_workers, within=60, every=0.2)
                ids = [
                    (await http.post("/v1/tasks", json={"input": REQUEST})).json()["id"]
                    for _ in range(4)
                ]
                streams = [
                    asyncio.create_task(read_sse(http, f"/v1/tasks/{i}/events")) for i in ids
                ]
                await eventually(lambda: _started(http, ids, 2), within=60, every=0.1)

                os.kill(redis.pid or 0, signal.SIGKILL)
                killed = time.monotonic()
                down: list[dict[str, Any]] = []
                while time.monotonic() - killed < 4:
                    answer = await http.get("/readyz")
                    down.append({"http": answer.status_code, **answer.json()})
                    await asyncio.sleep(0.25)
                during = await http.post("/v1/tasks", json={"input": "Summarise our Q3 notes"})
                sse = {"Accept": "text/event-stream"}
                late_url = f"/v1/tasks/{during.json()['id']}/events"  # nobody follows it yet
                async with http.stream("GET", late_url, headers=sse) as late:
                    late_stream = (late.status_code, late.headers.get("retry-after"))
                await asyncio.to_thread(redis.stop)  # reaps the killed process
                await asyncio.to_thread(redis.start, port=redis.port)
                back = time.monotonic()
                ids.append(during.json()["id"])

                async def all_ended() -> bool:
                    return set((await _statuses(http, ids)).values()) <= ENDED

                await eventually(all_ended, within=15, every=0.2, message="tasks after Redis")
                ended_in = time.monotonic() - back
                ready = await eventually(
                    lambda: _ready(http), within=15, every=0.2, message="ready after Redis"
                )
                reads: list[SseRead] = await asyncio.wait_for(asyncio.gather(*streams), 30)
                logged = {i: await _check_log_of(http, i) for i in ids}
            exits = {name: proc.poll() for name, proc in (("api", api), ("1", one), ("2", two))}
    finally:
        await asyncio.to_thread(redis.stop)

    assert exits == {"api": None, "1": None, "2": None}  # nobody exited
    assert during.status_code == 202, during.text  # submitting needs no Redis
    assert late_stream[0] == 503, late_stream  # a live stream does: come back later
    assert (late_stream[1] or "").isdigit(), late_stream
    assert ended_in < 15
    print(f"all {len(ids)} tasks ended {ended_in:.1f}s after Redis returned")
    assert {d["http"] for d in down} == {503}
    assert all(d["components"]["redis"]["status"] == "down" for d in down)
    assert all(d["components"]["redis"]["detail"] for d in down)  # the reason
    assert ready["components"]["redis"]["status"] == "ok"
    reasons = [e["data"]["reason"] for i in ids for e in logged[i] if e["type"] == "task.requeued"]
    assert "worker died" not in reasons  # Redis away or just back: nobody taken for dead
    for task_id, read in zip(ids, reads, strict=False):  # the streams opened before the kill
        assert read.status == 200
        assert [e["seq"] for e in read.events] == [e["seq"] for e in logged[task_id]]
    for name in ("worker-1", "worker-2"):
        text = logs[name].read_text()
        assert "Traceback" not in text, text[-3000:]
        assert len(_lines(logs[name], "chatsys.worker.polling_again")) >= 1, name
    assert "Traceback" not in logs["api"].read_text()


async def _ready(http: httpx.AsyncClient) -> dict[str, Any] | None:
    answer = await http.get("/readyz")
    body: dict[str, Any] = answer.json()
    return body if answer.status_code == 200 else None


async def test_a_postgres_stop_answers_503s_and_no_task_fails(
    redis_url: str, llm: RunningFake, tmp_path: Path
) -> None:
    postgres = EmbeddedPostgres(tmp_path / "pg")
    database_url = await asyncio.to_thread(postgres.start)
    await asyncio.to_thread(migrations.upgrade, database_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(database_url, redis_url, port, llm)
    logs = {name: tmp_path / f"{name}.log" for name in ("api", "worker")}
    answers: list[httpx.Response] = []
    stop_trickle = asyncio.Event()
    try:
        with (
            terminating(chatsys("api", env=env, log=logs["api"])) as api,
            terminating(chatsys("worker", env=env, log=logs["worker"])) as worker,
        ):
            await asyncio.to_thread(wait_ready, base, 90, proc=api, log=logs["api"])
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                ids = [
                    (await http.post("/v1/tasks", json={"input": REQUEST})).json()["id"]
                    for _ in range(3)
                ]
                await eventually(lambda: _started(http, ids, 2), within=60, every=0.1)

                async def trickle() -> None:
                    calls = [
                        lambda: http.get("/v1/tasks", params={"limit": 5}),
                        lambda: http.post("/v1/conversations", json={"title": "during"}),
                        lambda: http.get(f"/v1/tasks/{ids[0]}"),
                    ]
                    n = 0
                    while not stop_trickle.is_set():
                        answers.append(await calls[n % len(calls)]())
                        n += 1
                        await asyncio.sleep(0.1)

                requests = asyncio.create_task(trickle())
                await asyncio.sleep(0.5)
                await asyncio.to_thread(postgres.stop)
                stopped = time.monotonic()
                await asyncio.sleep(5)
                midway = await http.get("/readyz")
                await asyncio.sleep(max(0.0, 10 - (time.monotonic() - stopped)))
                await asyncio.to_thread(postgres.start, port=postgres.port)
                await asyncio.sleep(3)
                stop_trickle.set()
                await requests

                async def all_ended() -> bool:
                    return set((await _statuses(http, ids)).values()) <= ENDED

                await eventually(all_ended, within=30, every=0.2, message="tasks after Postgres")
                for task_id in ids:
                    await _check_log_of(http, task_id)
                ready = await eventually(lambda: _ready(http), within=15, every=0.2)
            exits = {"api": api.poll(), "worker": worker.poll()}
    finally:
        stop_trickle.set()
        await asyncio.to_thread(postgres.stop)

    assert exits == {"api": None, "worker": None}
    statuses = [a.status_code for a in answers]
    refused = [a for a in answers if a.status_code == 503]
    print(f"{len(answers)} requests: {len(refused)} answered 503, the rest {set(statuses) - {503}}")
    assert refused, "no request met the outage"
    assert [s for s in statuses if s >= 500 and s != 503] == []
    assert set(statuses) <= {200, 201, 503}
    for answer in refused:
        assert answer.headers["retry-after"].isdigit()
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"] == UNAVAILABLE
    assert midway.status_code == 503
    assert midway.json()["components"]["postgres"]["status"] == "down"
    assert ready["components"]["postgres"]["status"] == "ok"
    api_log = logs["api"].read_text()
    assert "Traceback" not in api_log, api_log[-3000:]
    assert "chatsys.api.unhandled_error" not in api_log
    started = _lines(logs["api"], "chatsys.outage.started")
    assert [(s["level"], s["dependency"]) for s in started] == [("warning", "database")]
    assert [s["dependency"] for s in _lines(logs["api"], "chatsys.outage.ended")] == ["database"]
    worker_log = logs["worker"].read_text()
    assert "chatsys.task.crashed" not in worker_log, worker_log[-3000:]
    assert len(_lines(logs["worker"], "chatsys.outage.started")) == 1
