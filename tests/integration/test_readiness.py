"""/readyz reflects the real state of Postgres, Redis and the worker pool."""

from __future__ import annotations

import asyncio

import httpx

from chatsys.bootstrap import build_worker
from chatsys.infra.db import migrations
from chatsys.infra.settings import Settings
from tests.support import eventually, stop_worker


async def test_healthz_answers_without_checking_anything(client: httpx.AsyncClient) -> None:
    answer = await client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


async def test_not_ready_without_a_worker(client: httpx.AsyncClient) -> None:
    answer = await client.get("/readyz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unavailable"
    assert body["components"]["postgres"]["status"] == "ok"
    assert body["components"]["redis"]["status"] == "ok"
    assert body["components"]["worker"]["status"] == "down"
    assert "no worker heartbeat" in body["components"]["worker"]["detail"]
    assert body["llm"]["mode"] == "offline"


async def test_ready_while_a_worker_runs_and_not_after_it_stops(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    worker = build_worker(settings)
    worker._handle_signals = False
    running = asyncio.create_task(worker.async_run())
    try:

        async def ready() -> httpx.Response:
            answer = await client.get("/readyz")
            assert answer.status_code == 200, answer.text
            return answer

        answer = await eventually(ready, within=10, every=0.1)
        assert answer.json()["components"]["worker"]["info"]["workers"] == 1
    finally:
        await stop_worker(worker, running)
    after = await client.get("/readyz")
    assert after.status_code == 503
    assert after.json()["components"]["worker"]["status"] == "down"


async def test_an_unmigrated_database_is_reported(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await asyncio.to_thread(migrations.downgrade, database_url, "base")
    body = (await client.get("/readyz")).json()
    assert body["components"]["postgres"]["status"] == "down"
    assert "run `chatsys migrate`" in body["components"]["postgres"]["detail"]
