"""Webhook deliveries end to end: real API, real worker, real Postgres and Redis, and real
HTTP receivers on 127.0.0.1 (so private networks are allowed here, except where a test
checks the refusals)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
import redis.asyncio as aioredis
from arq.worker import Worker
from fastapi import FastAPI
from pydantic import SecretStr
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from chatsys.bootstrap import Resources, build_app, build_worker
from chatsys.bootstrap.components import retry_policy, webhook_sender
from chatsys.domain.tasks.model import Task, TaskStatus
from chatsys.domain.webhooks.delivery import DeliverWebhook
from chatsys.domain.webhooks.model import DeliveryStatus, WebhookDelivery, new_secret
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
from tests.support import eventually, free_port, stop_worker
from tests.webhook_receiver import Canary, Receiver

FAST = WebhookSettings(
    allow_private_networks=True,
    retry_schedule=[0, 0.3, 0.3, 0.3],
    retry_jitter=0.1,
    poll_interval=0.2,
    connect_timeout=2,
    timeout=5,
)


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment=Environment.TEST,
        data_dir=tmp_path / "data",
        database=DatabaseSettings(url=SecretStr(database_url), pool_size=5),
        redis=RedisSettings(url=SecretStr(redis_url)),
        worker=WorkerSettings(heartbeat_interval=0.2, heartbeat_ttl=3.0, maintenance_interval=0.2),
        webhooks=FAST,
        auth=AuthSettings(enabled=False),
        limits=LimitSettings(enabled=False),
    )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running


async def deliveries(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    answer = await client.get("/v1/webhook-deliveries", params={"task_id": task_id})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def finished(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    """The task's deliveries once every one of them is finished."""

    async def check() -> list[dict[str, Any]] | None:
        found = await deliveries(client, task_id)
        done = found and all(d["status"] in ("succeeded", "failed") for d in found)
        return found if done else None

    result: list[dict[str, Any]] = await eventually(check)
    return result


async def test_deliveries_verify_with_standardwebhooks_and_carry_the_task(
    client: httpx.AsyncClient,
    worker: Worker,
    receiver: Receiver,
    capfd: pytest.CaptureFixture[str],
) -> None:
    endpoint = (await client.post("/v1/webhooks", json={"url": f"{receiver.url}/endpoint"})).json()
    made = await client.post(
        "/v1/tasks", json={"input": "hello there", "webhook_url": f"{receiver.url}/task"}
    )
    assert made.status_code == 202, made.text
    task_secret = made.json()["webhook_secret"]
    assert task_secret.startswith("whsec_")
    secrets = {"/endpoint": endpoint["secret"], "/task": task_secret}

    got = await receiver.wait_for(2)
    task = (await client.get(f"/v1/tasks/{made.json()['id']}")).json()
    assert task["status"] == "succeeded"
    assert {r.path for r in got} == {"/endpoint", "/task"}
    for request in got:
        secret = secrets[request.path]
        payload = Webhook(secret).verify(request.body, request.headers)
        assert payload["type"] == "task.succeeded"
        assert payload["data"]["task"] == task  # the same JSON as GET /v1/tasks/{id}
        datetime.fromisoformat(payload["timestamp"])
        assert request.headers["content-type"] == "application/json"
        assert request.headers["webhook-id"].startswith("msg_")
        tampered = request.body.replace(b'"succeeded"', b'"failed"', 1)
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(tampered, request.headers)
        other = secrets["/task" if request.path == "/endpoint" else "/endpoint"]
        with pytest.raises(WebhookVerificationError):
            Webhook(other).verify(request.body, request.headers)

    logged = await finished(client, made.json()["id"])
    assert {d["status"] for d in logged} == {"succeeded"}
    assert all(d["attempts"][0]["status_code"] == 200 for d in logged)
    # No secret in the API's answers after creation, nor in anything logged.
    listed = (await client.get("/v1/webhooks")).json()["items"]
    assert "secret" not in listed[0]
    assert "webhook_secret" not in task
    out, err = capfd.readouterr()
    for secret in secrets.values():
        assert secret not in out + err
        assert secret not in json.dumps(logged)


async def test_500_500_200_arrives_on_the_third_attempt_with_one_webhook_id(
    client: httpx.AsyncClient, worker: Worker, receiver: Receiver
) -> None:
    receiver.statuses = [500, 500, 200]
    made = await client.post(
        "/v1/tasks", json={"input": "hello there", "webhook_url": f"{receiver.url}/hook"}
    )
    secret = made.json()["webhook_secret"]
    got = await receiver.wait_for(3)
    assert [r.status for r in got] == [500, 500, 200]
    assert len({r.headers["webhook-id"] for r in got}) == 1
    for request in got:  # each attempt signed for its own timestamp
        Webhook(secret).verify(request.body, request.headers)
    assert len({r.body for r in got}) == 1

    [delivery] = await finished(client, made.json()["id"])
    assert delivery["status"] == "succeeded"
    assert delivery["webhook_id"] == got[0].headers["webhook-id"]
    assert delivery["attempt_count"] == 3
    attempts = delivery["attempts"]
    assert [a["number"] for a in attempts] == [1, 2, 3]
    assert [a["status_code"] for a in attempts] == [500, 500, 200]
    assert [a["error"] for a in attempts] == ["HTTP 500", "HTTP 500", None]
    assert all(a["latency_ms"] > 0 for a in attempts)
    await asyncio.sleep(0.5)
    assert len(receiver.received) == 3  # nothing more


async def test_the_last_failure_is_a_dead_letter_and_redeliver_sends_it_again(
    client: httpx.AsyncClient, worker: Worker, receiver: Receiver
) -> None:
    receiver.default = 503
    made = await client.post(
        "/v1/tasks", json={"input": "hello there", "webhook_url": f"{receiver.url}/hook"}
    )
    [delivery] = await finished(client, made.json()["id"])
    assert delivery["status"] == "failed"
    assert len(delivery["attempts"]) == len(FAST.retry_schedule) == 4
    assert delivery["next_attempt_at"] is None
    failed = (await client.get("/v1/webhook-deliveries", params={"status": "failed"})).json()
    assert [d["id"] for d in failed["items"]] == [delivery["id"]]

    receiver.default = 204
    again = await client.post(f"/v1/webhook-deliveries/{delivery['id']}/redeliver")
    assert again.status_code == 202, again.text
    assert again.json()["status"] == "pending"
    got = await receiver.wait_for(5)
    assert got[-1].headers["webhook-id"] == delivery["webhook_id"]

    async def succeeded() -> dict[str, Any] | None:
        found = (await client.get(f"/v1/webhook-deliveries/{delivery['id']}")).json()
        return found if found["status"] == "succeeded" else None

    redelivered = await eventually(succeeded)
    assert [a["status_code"] for a in redelivered["attempts"]] == [503, 503, 503, 503, 204]


async def test_redirects_are_failures_and_410_disables_the_endpoint(
    client: httpx.AsyncClient, worker: Worker, receiver: Receiver
) -> None:
    receiver.statuses = [302, 410]
    endpoint = (await client.post("/v1/webhooks", json={"url": f"{receiver.url}/gone"})).json()
    made = (await client.post("/v1/tasks", json={"input": "hello there"})).json()
    [delivery] = await finished(client, made["id"])
    assert delivery["status"] == "failed"
    assert [(a["status_code"], a["error"]) for a in delivery["attempts"]] == [
        (302, "HTTP 302: redirects are not followed"),
        (410, "the receiver answered 410 Gone"),
    ]
    shown = (await client.get(f"/v1/webhooks/{endpoint['id']}")).json()
    assert shown["enabled"] is False
    assert shown["disabled_reason"] == "the receiver answered 410 Gone"
    conflict = await client.post(f"/v1/webhook-deliveries/{delivery['id']}/redeliver")
    assert conflict.status_code == 409
    assert "disabled" in conflict.json()["detail"]

    later = (await client.post("/v1/tasks", json={"input": "hello again"})).json()
    await eventually(lambda: _status(client, later["id"], "succeeded"))
    assert await deliveries(client, later["id"]) == []  # a disabled endpoint gets nothing


async def test_failures_in_a_row_pause_an_endpoint_until_a_probe_gets_through(
    client: httpx.AsyncClient, settings: Settings, receiver: Receiver
) -> None:
    receiver.default = 503
    breaking = settings.model_copy(
        update={"webhooks": FAST.model_copy(update={"breaker_threshold": 2, "breaker_backoff": 2})}
    )
    worker = build_worker(breaking)
    worker._handle_signals = False
    running = asyncio.create_task(worker.async_run())
    try:
        endpoint = (await client.post("/v1/webhooks", json={"url": f"{receiver.url}/in"})).json()
        assert endpoint["circuit"] == {
            "state": "closed", "consecutive_failures": 0, "paused_until": None,
        }  # fmt: skip
        made = (await client.post("/v1/tasks", json={"input": "hello there"})).json()
        await receiver.wait_for(2, within=20)

        async def opened() -> dict[str, Any] | None:
            shown = (await client.get(f"/v1/webhooks/{endpoint['id']}")).json()
            return shown if shown["circuit"]["state"] == "open" else None

        shown = await eventually(opened, within=5)
        assert shown["circuit"]["consecutive_failures"] == 2
        paused_until = datetime.fromisoformat(shown["circuit"]["paused_until"])
        assert 1 < (paused_until - datetime.now(UTC)).total_seconds() <= 2.5
        await asyncio.sleep(1.0)  # due again after 0.3 s, but paused: nothing is sent
        assert len(receiver.received) == 2
        [delivery] = await deliveries(client, made["id"])
        assert (delivery["status"], delivery["attempt_count"]) == ("pending", 2)

        receiver.default = 200
        [delivery] = await finished(client, made["id"])
        assert delivery["status"] == "succeeded"
        assert [a["status_code"] for a in delivery["attempts"]] == [503, 503, 200]
        assert receiver.received[2].at >= paused_until.timestamp() - 0.05  # the probe
        closed = (await client.get(f"/v1/webhooks/{endpoint['id']}")).json()["circuit"]
        assert closed == {"state": "closed", "consecutive_failures": 0, "paused_until": None}
    finally:
        await stop_worker(worker, running)


async def _status(client: httpx.AsyncClient, task_id: str, wanted: str) -> bool:
    return bool((await client.get(f"/v1/tasks/{task_id}")).json()["status"] == wanted)


async def test_a_rotated_secret_signs_with_both_during_the_grace_period(
    client: httpx.AsyncClient, worker: Worker, receiver: Receiver
) -> None:
    created = (await client.post("/v1/webhooks", json={"url": f"{receiver.url}/r"})).json()
    rotated = await client.post(
        f"/v1/webhooks/{created['id']}/rotate-secret", json={"grace_seconds": 3600}
    )
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new != created["secret"]
    assert rotated.json()["previous_secret_expires_at"] is not None
    await client.post("/v1/tasks", json={"input": "hello there"})
    [request] = await receiver.wait_for(1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(request.body, request.headers)
    Webhook(created["secret"]).verify(request.body, request.headers)

    # Without a grace period the old secret stops signing at once.
    await client.post(f"/v1/webhooks/{created['id']}/rotate-secret", json={"grace_seconds": 0})
    await client.post("/v1/tasks", json={"input": "hello there"})
    got = await receiver.wait_for(2)
    assert len(got[1].headers["webhook-signature"].split(" ")) == 1


async def test_a_cancelled_queued_task_records_its_delivery_with_the_cancel(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    made = (
        await client.post(
            "/v1/tasks", json={"input": "write a haiku", "webhook_url": f"{receiver.url}/c"}
        )
    ).json()
    await client.post(f"/v1/tasks/{made['id']}/cancel")
    [delivery] = await deliveries(client, made["id"])
    assert delivery["event_type"] == "task.cancelled"
    assert delivery["payload"]["data"]["task"]["status"] == "cancelled"


async def test_a_delivery_survives_a_receiver_outage_and_a_worker_and_redis_restart(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    patient = settings.model_copy(
        update={"webhooks": FAST.model_copy(update={"retry_schedule": [0] + [0.5] * 60})}
    )
    port = free_port()  # nothing listens there yet: the receiver is down
    first = build_worker(patient)
    first._handle_signals = False
    running = asyncio.create_task(first.async_run())
    try:
        made = await client.post(
            "/v1/tasks",
            json={"input": "hello there", "webhook_url": f"http://127.0.0.1:{port}/late"},
        )
        task_id = made.json()["id"]

        async def failed_once() -> bool:
            found = await deliveries(client, task_id)
            return bool(found) and found[0]["attempt_count"] >= 1

        await eventually(failed_once)
        [delivery] = await deliveries(client, task_id)
        assert delivery["status"] in ("pending", "delivering")  # its next attempt may be on
        assert "could not connect" in delivery["attempts"][0]["error"]
    finally:
        await stop_worker(first, running)
    assert settings.redis.url is not None
    lost = aioredis.Redis.from_url(settings.redis.url.get_secret_value())
    await lost.flushdb()  # Redis lost every job
    await lost.aclose()

    async with Receiver(port=port) as receiver:
        second = build_worker(patient)
        second._handle_signals = False
        running = asyncio.create_task(second.async_run())
        try:
            [request] = await receiver.wait_for(1, within=30)
            Webhook(made.json()["webhook_secret"]).verify(request.body, request.headers)
            [delivery] = await finished(client, task_id)
            assert delivery["status"] == "succeeded"
            assert delivery["attempts"][-1]["status_code"] == 200
            await asyncio.sleep(1.0)
            assert len(receiver.received) == 1  # once
        finally:
            await stop_worker(second, running)


FORBIDDEN = [
    "http://127.0.0.1:{port}/",
    "http://10.0.0.1/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:{port}/",
    "http://[fe80::1]/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://0.0.0.0:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f000001:{port}/",
    "http://localhost:{port}/",
]


# At send time only spellings of this machine's loopback are tried for real (the canary
# listens there); the private and metadata ones are refused before any connection in
# tests/unit/test_webhook_urls.py, so no test ever sends a packet towards them.
LOOPBACK_SPELLINGS = [t for t in FORBIDDEN if "{port}" in t]


@pytest.fixture
async def strict_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API with private networks refused (the production default)."""
    strict = settings.model_copy(update={"webhooks": WebhookSettings()})
    app: FastAPI = build_app(strict)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://chatsys.test") as c:
            yield c


@pytest.mark.parametrize("template", FORBIDDEN)
async def test_forbidden_urls_are_refused_at_creation(
    strict_client: httpx.AsyncClient, template: str
) -> None:
    url = template.format(port=free_port())
    for path, body in (
        ("/v1/tasks", {"input": "hi", "webhook_url": url}),
        ("/v1/webhooks", {"url": url}),
    ):
        answer = await strict_client.post(path, json=body)
        assert answer.status_code == 422, (path, url, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        detail = answer.json()["detail"]
        assert any(
            word in detail
            for word in ("loopback", "private", "link-local", "metadata", "unspecified")
        ), detail
        # what to change, on the refusals that setting lifts (not metadata, 0.0.0.0)
        liftable = "metadata" not in detail and "unspecified" not in detail
        assert ("CHATSYS_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=true" in detail) == liftable, detail
    assert (await strict_client.get("/v1/tasks")).json()["items"] == []
    assert (await strict_client.get("/v1/webhooks")).json()["items"] == []


async def test_forbidden_urls_are_refused_at_send_time_and_the_canary_sees_nothing(
    settings: Settings,
) -> None:
    """Deliveries written straight into the outbox (as if the URL had resolved elsewhere
    at creation): the sender refuses each one at send time without connecting."""
    strict = settings.model_copy(update={"webhooks": WebhookSettings()})
    canary = await Canary().start()
    resources = await Resources.open(strict, role="test")
    try:
        task = Task(uuid4(), "local", "x", TaskStatus.SUCCEEDED, datetime.now(UTC),
                    webhook_secret=new_secret())  # fmt: skip
        async with resources.unit_of_work() as uow:
            await uow.tasks.add(task)
            ids = []
            for template in LOOPBACK_SPELLINGS:
                delivery_id = uuid4()
                ids.append(delivery_id)
                await uow.deliveries.add(
                    WebhookDelivery(
                        id=delivery_id, owner="local", task_id=task.id,
                        webhook_id=f"msg_{delivery_id.hex}", event_type="task.succeeded",
                        url=template.format(port=canary.port), body="{}",
                        status=DeliveryStatus.PENDING, created_at=datetime.now(UTC),
                        next_attempt_at=datetime.now(UTC),
                    )
                )  # fmt: skip
            await uow.commit()
        deliver = DeliverWebhook(
            resources.unit_of_work, SystemClock(), webhook_sender(strict), retry_policy(strict)
        )
        claimed = await deliver.claim(len(ids) + 10)
        assert sorted(o.id for o in claimed) == sorted(ids)
        for outgoing in claimed:
            assert (await deliver.execute(outgoing)).status is DeliveryStatus.FAILED
        async with resources.unit_of_work() as uow:
            logged = await uow.deliveries.list_for_owner("local", limit=50, before=None)
        assert len(logged) == len(LOOPBACK_SPELLINGS)
        for delivery in logged:
            [attempt] = delivery.attempts
            assert attempt.status_code is None
            assert attempt.error is not None
            assert attempt.error.startswith("refused: webhook URL"), attempt.error
        await asyncio.sleep(0.2)
        assert canary.connections == 0
    finally:
        await resources.close()
        await canary.stop()


async def test_the_connection_goes_to_the_checked_address_with_the_original_host(
    receiver: Receiver,
) -> None:
    """DNS answers once per attempt; the sender connects to what was checked and keeps
    the URL's host name in the Host header."""
    answers = iter([["127.0.0.1"], ["10.0.0.1"]])  # a rebinding DNS server
    asked: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return next(answers)

    from chatsys.infra.webhook_http import AddressVetter, HttpWebhookSender

    vetter = AddressVetter(allow_private=False, resolve=rebinding)
    local = AddressVetter(allow_private=True, resolve=rebinding)
    ok = await HttpWebhookSender(local).send(
        f"http://hooks.test:{receiver.port}/in", {"webhook-id": "msg_1"}, b"{}"
    )
    assert ok.status_code == 200, ok.error
    [request] = receiver.received
    assert request.headers["host"] == f"hooks.test:{receiver.port}"
    refused = await HttpWebhookSender(vetter).send(
        f"http://hooks.test:{receiver.port}/in", {"webhook-id": "msg_2"}, b"{}"
    )
    assert refused.error is not None
    assert "10.0.0.1, a private address" in refused.error
    assert asked == ["hooks.test", "hooks.test"]
    assert len(receiver.received) == 1


async def test_attempts_reuse_a_kept_alive_connection_only_to_the_checked_address() -> None:
    """One connection carries the attempts to one receiver; an attempt whose host now
    resolves to a refused address sends nothing, pooled connection or not."""
    answers = iter([["127.0.0.1"]] * 3 + [["169.254.169.254"]] + [["127.0.0.1"]])
    from chatsys.infra.webhook_http import AddressVetter, HttpWebhookSender

    async def resolve(host: str, port: int) -> list[str]:
        return next(answers)

    async with Receiver(keep_alive=True) as receiver:
        sender = HttpWebhookSender(AddressVetter(allow_private=True, resolve=resolve))
        try:
            url = f"http://hooks.test:{receiver.port}/in"
            for n in range(3):
                sent = await sender.send(url, {"webhook-id": f"msg_{n}"}, b"{}")
                assert sent.status_code == 200, sent.error
            assert (len(receiver.received), receiver.connections) == (3, 1)
            refused = await sender.send(url, {"webhook-id": "msg_3"}, b"{}")
            assert refused.error is not None
            assert "169.254.169.254" in refused.error
            assert len(receiver.received) == 3
            again = await sender.send(url, {"webhook-id": "msg_4"}, b"{}")
            assert again.status_code == 200
            assert (len(receiver.received), receiver.connections) == (4, 1)
        finally:
            await sender.aclose()


async def test_a_kept_alive_connection_the_receiver_closed_is_not_reused() -> None:
    """A receiver that offers keep-alive and then hangs up an idle connection: the next
    attempt notices before sending (a fresh connection), instead of failing on it."""
    from chatsys.infra.webhook_http import AddressVetter, HttpWebhookSender

    connections = 0

    async def answer_then_hang_up(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal connections
        connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )  # fmt: skip
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # idle, kept alive by the sender, closed by the receiver

    server = await asyncio.start_server(answer_then_hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sender = HttpWebhookSender(AddressVetter(allow_private=True))
    try:
        for n in range(3):
            sent = await sender.send(f"http://127.0.0.1:{port}/in", {"webhook-id": f"m{n}"}, b"{}")
            assert (sent.status_code, sent.error) == (200, None)
            await asyncio.sleep(0.3)  # the receiver has hung up by now
        assert connections == 3
    finally:
        await sender.aclose()
        server.close()


async def test_the_response_read_is_bounded_and_slow_receivers_time_out() -> None:
    from chatsys.infra.webhook_http import AddressVetter, HttpWebhookSender

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            for _ in range(2000):
                writer.write(b"x" * 65536)
                await writer.drain()
        writer.close()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers; returns when the sender hangs up
        writer.close()

    vetter = AddressVetter(allow_private=True)
    for handler, expect in ((flood, 200), (silent, None)):
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            sender = HttpWebhookSender(vetter, timeout=1.0, max_response_bytes=1024)
            started = asyncio.get_running_loop().time()
            result = await sender.send(f"http://127.0.0.1:{port}/", {}, b"{}")
            assert asyncio.get_running_loop().time() - started < 3
            assert result.status_code == expect, result
            if expect is None:
                assert result.error is not None
                assert "1 s" in result.error or "timed out" in result.error
        finally:
            server.close()
