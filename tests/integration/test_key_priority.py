"""An API key's default task priority, over HTTP and WebSocket with real Postgres and
Redis: a task submitted without a `priority` is stored and enqueued with its key's
default, an explicit one wins, and an admin changes the default with PATCH."""

from __future__ import annotations

import json
import time
import uuid

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from websockets.asyncio.client import connect

from chatsys.bootstrap import build_app
from chatsys.bootstrap.cli import create_key
from chatsys.domain.access.model import Role
from chatsys.domain.tasks.model import Priority
from chatsys.infra.settings import AuthSettings, Settings
from tests.streams import serve
from tests.support import plain_dsn

LEAD = 600.0  # seconds: a job's place in the queue tells its priority beyond doubt
LEVELS = {0: "low", 1: "normal", 2: "high"}  # leads, as chatsys.infra.queue gives them


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.auth = AuthSettings(enabled=True, cache_seconds=30)
    settings.worker = settings.worker.model_copy(update={"priority_lead": LEAD})
    return settings


@pytest.fixture
async def admin(settings: Settings) -> dict[str, str]:
    _, full = await create_key(settings, name="admin", role=Role.ADMIN, subject="root")
    return {"Authorization": f"Bearer {full}"}


async def stored_priority(settings: Settings, task_id: str) -> str:
    assert settings.database.url is not None
    conn = await asyncpg.connect(plain_dsn(settings.database.url.get_secret_value()))
    try:
        priority: str = await conn.fetchval(
            "SELECT priority FROM tasks WHERE id = $1", uuid.UUID(task_id)
        )
    finally:
        await conn.close()
    return priority


async def enqueued_priority(settings: Settings, task_id: str) -> str:
    """The priority the task's job was queued with, read off its score in the arq queue
    (its enqueue time less the priority's lead). No worker runs: the job waits there."""
    assert settings.redis.url is not None
    redis = aioredis.Redis.from_url(settings.redis.url.get_secret_value())
    try:
        jobs = await redis.zrange(settings.worker.queue_name, 0, -1, withscores=True)
    finally:
        await redis.aclose()
    [score] = [s for job, s in jobs if job.decode().startswith(f"run:{task_id}:")]
    return LEVELS[round((time.time() * 1000 - score) / (LEAD * 1000))]


async def submit(client: httpx.AsyncClient, key: dict[str, str], **body: object) -> str:
    made = await client.post("/v1/tasks", json={"input": "hello", **body}, headers=key)
    assert made.status_code == 202, made.text
    task_id: str = made.json()["id"]
    return task_id


async def test_a_low_default_keys_task_is_stored_and_queued_low_unless_it_asks_otherwise(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    _, full = await create_key(
        settings, name="batch", role=Role.MEMBER, subject="etl", default_priority=Priority.LOW
    )
    low = {"Authorization": f"Bearer {full}"}
    me = (await client.get("/v1/me", headers=low)).json()
    assert (me["subject"], me["default_priority"]) == ("etl", "low")

    plain = await submit(client, low)
    answer = (await client.get(f"/v1/tasks/{plain}", headers=low)).json()
    assert answer["priority"] == "low"
    assert await stored_priority(settings, plain) == "low"
    assert await enqueued_priority(settings, plain) == "low"

    for asked in ("high", "normal"):  # explicit wins, "normal" included
        task = await submit(client, low, priority=asked)
        assert await stored_priority(settings, task) == asked
        assert await enqueued_priority(settings, task) == asked

    # A conversation message and a WebSocket message (through a stream ticket) alike.
    conversation = (await client.post("/v1/conversations", json={}, headers=low)).json()["id"]
    posted = await client.post(
        f"/v1/conversations/{conversation}/messages", json={"content": "hi"}, headers=low
    )
    assert posted.json()["priority"] == "low"
    assert await enqueued_priority(settings, posted.json()["id"]) == "low"
    ticket = (await client.post("/v1/stream-tickets", headers=low)).json()["ticket"]
    async with serve(app) as host, connect(f"ws://{host}/v1/ws?ticket={ticket}") as ws:
        await ws.send(json.dumps({"type": "send_message", "conversation_id": conversation,
                                  "content": "again", "id": "m"}))  # fmt: skip
        frame = json.loads(await ws.recv())
    assert frame["type"] == "message_accepted", frame
    assert await stored_priority(settings, frame["task_id"]) == "low"

    # A key without one: normal, as every key made before default priorities.
    _, other = await create_key(settings, name="plain", role=Role.MEMBER, subject="etl")
    task = await submit(client, {"Authorization": f"Bearer {other}"})
    assert await enqueued_priority(settings, task) == "normal"


async def test_an_admin_sets_and_changes_a_keys_default_and_replays_still_match(
    client: httpx.AsyncClient, settings: Settings, admin: dict[str, str]
) -> None:
    made = await client.post(
        "/v1/api-keys", json={"name": "nightly", "default_priority": "low"}, headers=admin
    )
    assert made.status_code == 201, made.text
    assert made.json()["default_priority"] == "low"
    key_id, key = made.json()["id"], {"Authorization": f"Bearer {made.json()['key']}"}
    listed = (await client.get("/v1/api-keys", headers=admin)).json()["items"]
    assert {k["name"]: k["default_priority"] for k in listed} == {
        "nightly": "low",
        "admin": "normal",
    }

    once = {**key, "Idempotency-Key": "nightly-1"}
    first = (await client.post("/v1/tasks", json={"input": "x"}, headers=once)).json()
    assert first["priority"] == "low"

    changed = await client.patch(
        f"/v1/api-keys/{key_id}", json={"default_priority": "high"}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["id"], changed.json()["default_priority"]) == (key_id, "high")
    assert (await client.get("/v1/me", headers=key)).json()["default_priority"] == "high"
    assert await enqueued_priority(settings, await submit(client, key)) == "high"

    # The same body under the same Idempotency-Key is still the same request.
    replay = await client.post("/v1/tasks", json={"input": "x"}, headers=once)
    assert replay.status_code == 202, replay.text
    assert replay.headers["idempotent-replayed"] == "true"
    assert (replay.json()["id"], replay.json()["priority"]) == (first["id"], "low")
    other = await client.post("/v1/tasks", json={"input": "x", "priority": "low"}, headers=once)
    assert other.status_code == 409  # another body, though it asks for what was done

    audit = (await client.get("/v1/audit-logs", params={"action": "api_key.update"},
                              headers=admin)).json()["items"]  # fmt: skip
    assert [e["details"] for e in audit] == [{"default_priority": "high", "was": "low"}]


async def test_patching_a_key_refuses_what_it_cannot_do(
    client: httpx.AsyncClient, settings: Settings, admin: dict[str, str]
) -> None:
    key, full = await create_key(settings, name="m", role=Role.MEMBER, subject="etl")
    member = {"Authorization": f"Bearer {full}"}
    path = f"/v1/api-keys/{key.id}"
    cases: list[tuple[dict[str, str], str, object, int]] = [
        (member, path, {"default_priority": "high"}, 403),  # a member may not raise its own
        (admin, path, {"default_priority": "urgent"}, 422),
        (admin, path, {"default_priority": "high", "role": "admin"}, 422),
        (admin, path, {}, 422),
        (admin, f"/v1/api-keys/{uuid.uuid4()}", {"default_priority": "high"}, 404),
    ]
    for headers, where, body, status in cases:
        answer = await client.patch(where, json=body, headers=headers)
        assert answer.status_code == status, (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert (await client.delete(path, headers=admin)).status_code == 204
    answer = await client.patch(path, json={"default_priority": "high"}, headers=admin)
    assert answer.status_code == 409, answer.text
    assert "revoked" in answer.json()["detail"]
    listed = (await client.get("/v1/api-keys", headers=admin)).json()["items"]
    assert next(k for k in listed if k["id"] == str(key.id))["default_priority"] == "normal"


async def test_with_authentication_off_the_default_is_normal(settings: Settings) -> None:
    settings.auth = AuthSettings(enabled=False)
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dev.test") as client:
            assert (await client.get("/v1/me")).json()["default_priority"] == "normal"
            task = await submit(client, {})
            assert await stored_priority(settings, task) == "normal"
            assert await enqueued_priority(settings, task) == "normal"
