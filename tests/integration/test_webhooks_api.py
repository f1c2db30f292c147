"""The webhook endpoints API and the delivery log on real Postgres (no worker needed), and
the terminal paths that do not go through a runner: the sweeper and a worker's
hand-back cancel a task, and their deliveries are written with the cancel."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text

from chatsys.bootstrap import Resources
from chatsys.bootstrap.components import webhook_callbacks
from chatsys.domain.tasks.model import Task, TaskStatus
from chatsys.domain.tasks.recovery import RequeueStale
from chatsys.domain.tasks.submission import Dispatcher
from chatsys.domain.webhooks.model import DeliveryStatus
from chatsys.infra.clock import SystemClock
from chatsys.infra.settings import (
    AuthSettings,
    DatabaseSettings,
    Environment,
    LimitSettings,
    RedisSettings,
    Settings,
    WebhookSettings,
    WorkerSettings,
)

HOOK = "http://127.0.0.1:9/hook"  # allowed below; nothing is ever sent in these tests


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment=Environment.TEST,
        data_dir=tmp_path / "data",
        database=DatabaseSettings(url=SecretStr(database_url), pool_size=5),
        redis=RedisSettings(url=SecretStr(redis_url)),
        worker=WorkerSettings(heartbeat_interval=0.2, heartbeat_ttl=3.0),
        webhooks=WebhookSettings(allow_private_networks=True),
        auth=AuthSettings(enabled=False),
        limits=LimitSettings(enabled=False),
    )


async def test_register_list_get_rotate_delete(client: httpx.AsyncClient) -> None:
    made = await client.post(
        "/v1/webhooks",
        json={"url": HOOK, "event_types": ["task.failed"], "description": "alerts"},
    )
    assert made.status_code == 201, made.text
    endpoint = made.json()
    assert made.headers["location"] == f"/v1/webhooks/{endpoint['id']}"
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["event_types"] == ["task.failed"]
    assert endpoint["enabled"] is True

    shown = (await client.get(f"/v1/webhooks/{endpoint['id']}")).json()
    assert "secret" not in shown
    assert shown["description"] == "alerts"

    rotated = (await client.post(f"/v1/webhooks/{endpoint['id']}/rotate-secret")).json()
    assert rotated["secret"] != endpoint["secret"]
    expires = datetime.fromisoformat(rotated["previous_secret_expires_at"])
    assert 23 * 3600 < (expires - datetime.now(UTC)).total_seconds() <= 24 * 3600

    assert (await client.delete(f"/v1/webhooks/{endpoint['id']}")).status_code == 204
    assert (await client.get(f"/v1/webhooks/{endpoint['id']}")).status_code == 404
    assert (await client.delete(f"/v1/webhooks/{endpoint['id']}")).status_code == 404


async def test_endpoints_page_newest_first(client: httpx.AsyncClient) -> None:
    ids = [
        (await client.post("/v1/webhooks", json={"url": f"{HOOK}/{n}"})).json()["id"]
        for n in range(5)
    ]
    first = (await client.get("/v1/webhooks", params={"limit": 2})).json()
    second = (
        await client.get("/v1/webhooks", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    third = (
        await client.get("/v1/webhooks", params={"limit": 2, "cursor": second["next_cursor"]})
    ).json()
    seen = [e["id"] for e in first["items"] + second["items"] + third["items"]]
    assert seen == list(reversed(ids))
    assert third["next_cursor"] is None
    bad = await client.get("/v1/webhooks", params={"cursor": "nonsense"})
    assert bad.status_code == 422


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"url": "ftp://example.com/"}, "must use http or https"),
        ({"url": "https://u:p@example.com/"}, "credentials"),
        ({"url": "https://example.com/" + "x" * 2100}, "at most 2048 characters"),
        ({"url": HOOK, "event_types": ["task.exploded"]}, "body.event_types.0"),
        ({"url": HOOK, "event_types": []}, "at least 1 item"),
        ({"url": HOOK, "surprise": True}, "Extra inputs are not permitted"),
    ],
)
async def test_bad_endpoints_are_422_naming_the_reason(
    client: httpx.AsyncClient, body: dict[str, Any], detail: str
) -> None:
    answer = await client.post("/v1/webhooks", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert detail in answer.json()["detail"]


async def test_a_bad_task_webhook_url_is_422_naming_the_reason(client: httpx.AsyncClient) -> None:
    for url, detail in (
        ("ftp://example.com/", "must use http or https"),
        ("https://user:secret@example.com/", "must not contain credentials"),
        ("http://0x7f.0.0.1:9/", None),  # allowed here: private networks are on
    ):
        answer = await client.post("/v1/tasks", json={"input": "hi", "webhook_url": url})
        if detail is None:
            assert answer.status_code == 202
            continue
        assert answer.status_code == 422
        assert detail in answer.json()["detail"]
        assert "secret" not in answer.text


async def test_the_delivery_log_filters_and_scopes(client: httpx.AsyncClient) -> None:
    await client.post("/v1/webhooks", json={"url": HOOK})
    one = (await client.post("/v1/tasks", json={"input": "a", "webhook_url": HOOK})).json()
    two = (await client.post("/v1/tasks", json={"input": "b"})).json()
    for task in (one, two):
        assert (await client.post(f"/v1/tasks/{task['id']}/cancel")).status_code == 200
    everything = (await client.get("/v1/webhook-deliveries")).json()["items"]
    assert len(everything) == 3  # task one: its URL and the endpoint; task two: the endpoint
    mine = (await client.get("/v1/webhook-deliveries", params={"task_id": one["id"]})).json()
    assert {d["endpoint_id"] is None for d in mine["items"]} == {True, False}
    assert all(d["status"] == "pending" and d["attempts"] == [] for d in mine["items"])
    assert (await client.get("/v1/webhook-deliveries", params={"status": "succeeded"})).json()[
        "items"
    ] == []
    pending = mine["items"][0]
    conflict = await client.post(f"/v1/webhook-deliveries/{pending['id']}/redeliver")
    assert conflict.status_code == 409
    assert "still pending" in conflict.json()["detail"]
    missing = uuid4()
    assert (await client.get(f"/v1/webhook-deliveries/{missing}")).status_code == 404
    assert (await client.post(f"/v1/webhook-deliveries/{missing}/redeliver")).status_code == 404
    bad = await client.get("/v1/webhook-deliveries", params={"status": "lost"})
    assert bad.status_code == 422


async def test_deleting_an_endpoint_ends_its_unfinished_deliveries(
    client: httpx.AsyncClient,
) -> None:
    endpoint = (await client.post("/v1/webhooks", json={"url": HOOK})).json()
    task = (await client.post("/v1/tasks", json={"input": "a"})).json()
    await client.post(f"/v1/tasks/{task['id']}/cancel")
    await client.delete(f"/v1/webhooks/{endpoint['id']}")
    [delivery] = (await client.get("/v1/webhook-deliveries")).json()["items"]
    assert delivery["status"] == "failed"
    assert delivery["last_error"] == "the webhook endpoint was deleted"
    again = await client.post(f"/v1/webhook-deliveries/{delivery['id']}/redeliver")
    assert again.status_code == 409


async def test_the_sweeper_cancelling_a_dead_runners_task_records_its_delivery(
    settings: Settings,
) -> None:
    resources = await Resources.open(settings, role="test")
    try:
        task = Task(uuid4(), "local", "x", TaskStatus.QUEUED, datetime.now(UTC), webhook_url=HOOK,
                    webhook_secret="whsec_" + "A" * 40)  # fmt: skip
        async with resources.unit_of_work() as uow:
            await uow.tasks.add(task)
            await uow.commit()
        async with resources.unit_of_work() as uow:
            await uow.tasks.claim(task.id, "dead-worker", stale_after=10)
            await uow.tasks.request_cancel(task.id)
            await uow.commit()
        async with resources.engine.begin() as conn:
            await conn.execute(
                text("UPDATE tasks SET heartbeat_at = now() - interval '1 minute' WHERE id = :i"),
                {"i": task.id},
            )
        sweeper = RequeueStale(
            resources.unit_of_work,
            Dispatcher(resources.unit_of_work, resources.queue()),
            SystemClock(),
            callbacks=webhook_callbacks(resources),
        )
        assert await sweeper.execute() == []
        async with resources.unit_of_work() as uow:
            [delivery] = await uow.deliveries.list_for_owner("local", limit=5, before=None)
        assert delivery.event_type == "task.cancelled"
        assert delivery.task_id == task.id
        assert '"status":"cancelled"' in delivery.body
        assert delivery.status is DeliveryStatus.PENDING  # for the webhook slots to claim
        assert delivery.next_attempt_at is not None
        assert delivery.next_attempt_at <= datetime.now(UTC)  # due now
    finally:
        await resources.close()
