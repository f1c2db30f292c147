"""``Idempotency-Key`` on every POST that creates something, through the API on real
Postgres and Redis: a retry with the same key and body gets the first answer again
(``Idempotent-Replayed: true``) and creates nothing; another body is a 409; another
caller's key is its own; five identical requests at once create one thing. Answers that
show a secret once (a webhook endpoint's, an API key) are not replayed: 409."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from chatsys.bootstrap import Resources
from chatsys.bootstrap.cli import create_key
from chatsys.domain.access.model import Role
from chatsys.domain.approvals.model import Approval, ApprovalStatus
from chatsys.domain.tasks.model import TaskStatus
from chatsys.infra.settings import AuthSettings, LimitSettings, Settings, WebhookSettings

HOOK = "http://127.0.0.1:9/hook"  # allowed below; nothing is ever sent in these tests
REPLAYED = "idempotent-replayed"
PROBLEM = "application/problem+json"
Headers = dict[str, str]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.auth = AuthSettings(enabled=True, cache_seconds=5)
    settings.limits = LimitSettings(enabled=False)
    settings.webhooks = WebhookSettings(allow_private_networks=True)
    return settings


async def caller(settings: Settings, role: Role, subject: str) -> Headers:
    _, full = await create_key(settings, name=f"{subject} key", role=role, subject=subject)
    return {"Authorization": f"Bearer {full}"}


@pytest.fixture
async def ann(settings: Settings) -> Headers:
    return await caller(settings, Role.MEMBER, "ann")


@pytest.fixture
async def bob(settings: Settings) -> Headers:
    return await caller(settings, Role.MEMBER, "bob")


@pytest.fixture
async def root(settings: Settings) -> Headers:
    return await caller(settings, Role.ADMIN, "root")


def keyed(who: Headers, key: str) -> Headers:
    return {**who, "Idempotency-Key": key}


async def count(client: httpx.AsyncClient, path: str, who: Headers) -> int:
    answer = await client.get(path, headers=who, params={"limit": 100})
    assert answer.status_code == 200, answer.text
    return len(answer.json()["items"])


def assert_mismatch(answer: httpx.Response) -> None:
    assert answer.status_code == 409, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert "different request" in answer.json()["detail"]
    assert REPLAYED not in answer.headers


async def assert_replays(
    send: Callable[[Headers], Awaitable[httpx.Response]], who: Headers, key: str, status: int
) -> httpx.Response:
    """The first request with ``key`` answers ``status``; the retry the same, replayed."""
    first = await send(keyed(who, key))
    assert first.status_code == status, first.text
    assert REPLAYED not in first.headers
    again = await send(keyed(who, key))
    assert again.status_code == status, again.text
    assert again.headers[REPLAYED] == "true"
    assert again.json() == first.json()
    assert again.headers.get("location") == first.headers.get("location")
    return first


async def at_once(
    send: Callable[[Headers], Awaitable[httpx.Response]], who: Headers, key: str
) -> list[httpx.Response]:
    return list(await asyncio.gather(*(send(keyed(who, key)) for _ in range(5))))


async def conversation(client: httpx.AsyncClient, who: Headers) -> str:
    made = await client.post("/v1/conversations", json={"title": "t"}, headers=who)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def task(client: httpx.AsyncClient, who: Headers) -> str:
    made = await client.post("/v1/tasks", json={"input": "explain CRDTs"}, headers=who)
    assert made.status_code == 202, made.text
    return str(made.json()["id"])


async def events(client: httpx.AsyncClient, task_id: str, who: Headers, kind: str) -> int:
    page = (await client.get(f"/v1/tasks/{task_id}/events", headers=who)).json()
    return sum(1 for e in page["items"] if e["type"] == kind)


async def audited(client: httpx.AsyncClient, root: Headers, action: str) -> int:
    page = await client.get("/v1/audit-logs", headers=root, params={"action": action})
    return len(page.json()["items"])


# -- conversations --------------------------------------------------------------------


async def test_a_conversation_is_started_once_per_key(
    client: httpx.AsyncClient, ann: Headers, bob: Headers
) -> None:
    def start(title: str) -> Callable[[Headers], Awaitable[httpx.Response]]:
        return lambda h: client.post("/v1/conversations", json={"title": title}, headers=h)

    first = await assert_replays(start("Plans"), ann, "c-1", 201)
    assert first.headers["location"] == f"/v1/conversations/{first.json()['id']}"
    assert await count(client, "/v1/conversations", ann) == 1
    assert_mismatch(await start("Other plans")(keyed(ann, "c-1")))
    theirs = await start("Other plans")(keyed(bob, "c-1"))  # bob's key is his own
    assert theirs.status_code == 201
    assert REPLAYED not in theirs.headers
    assert await count(client, "/v1/conversations", ann) == 1

    answers = await at_once(start("Race"), ann, "c-race")
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(REPLAYED in a.headers for a in answers) == 4
    assert await count(client, "/v1/conversations", ann) == 2


# -- messages (each starts a paid task) -------------------------------------------------


async def test_a_message_is_posted_once_per_key(
    client: httpx.AsyncClient, ann: Headers, bob: Headers
) -> None:
    mine, his = await conversation(client, ann), await conversation(client, bob)

    def post(where: str, content: str) -> Callable[[Headers], Awaitable[httpx.Response]]:
        path = f"/v1/conversations/{where}/messages"
        return lambda h: client.post(path, json={"content": content}, headers=h)

    first = await assert_replays(post(mine, "hello"), ann, "m-1", 202)
    assert first.headers["location"] == f"/v1/tasks/{first.json()['id']}"
    assert await count(client, f"/v1/conversations/{mine}/messages", ann) == 1
    assert await count(client, "/v1/tasks", ann) == 1
    assert_mismatch(await post(mine, "hello again")(keyed(ann, "m-1")))
    theirs = await post(his, "hello")(keyed(bob, "m-1"))
    assert theirs.status_code == 202
    assert REPLAYED not in theirs.headers

    answers = await at_once(post(mine, "race"), ann, "m-race")
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    assert await count(client, f"/v1/conversations/{mine}/messages", ann) == 2
    assert await count(client, "/v1/tasks", ann) == 2


# -- cancel ---------------------------------------------------------------------------


async def test_a_cancel_replays_what_the_first_call_answered(
    client: httpx.AsyncClient, ann: Headers, bob: Headers
) -> None:
    task_id = await task(client, ann)

    def cancel(which: str) -> Callable[[Headers], Awaitable[httpx.Response]]:
        return lambda h: client.post(f"/v1/tasks/{which}/cancel", headers=h)

    first = await assert_replays(cancel(task_id), ann, "x-1", 200)
    assert first.json()["status"] == "cancelled"
    plain = await cancel(task_id)(ann)  # without the key: the task is finished
    assert plain.status_code == 409
    assert await events(client, task_id, ann, "task.cancelled") == 1
    assert_mismatch(await cancel(await task(client, ann))(keyed(ann, "x-1")))
    theirs = await cancel(await task(client, bob))(keyed(bob, "x-1"))
    assert theirs.status_code == 200
    assert REPLAYED not in theirs.headers

    raced = await task(client, ann)
    answers = await at_once(cancel(raced), ann, "x-race")
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    assert await events(client, raced, ann, "task.cancelled") == 1


# -- approval decisions ---------------------------------------------------------------


async def pending_approval(settings: Settings, task_id: str) -> str:
    """The task waits for a person's decision on a tool call (as a runner leaves it)."""
    resources = await Resources.open(settings, role="test")
    try:
        async with resources.unit_of_work() as uow:
            await uow.tasks.claim(uuid.UUID(task_id), "worker-1", stale_after=600)
            await uow.tasks.set_status(uuid.UUID(task_id), TaskStatus.AWAITING_APPROVAL)
            now = datetime.now(UTC)
            approval = Approval(
                uuid.uuid4(), uuid.UUID(task_id), "answer", "assistant", "time__now", {}, "d",
                ApprovalStatus.PENDING, now, now + timedelta(minutes=10), call_id="c1",
            )  # fmt: skip
            await uow.approvals.add(approval)
            await uow.commit()
        return str(approval.id)
    finally:
        await resources.close()


async def test_an_approval_decision_is_made_once_per_key(
    client: httpx.AsyncClient, settings: Settings, ann: Headers, bob: Headers, root: Headers
) -> None:
    task_id = await task(client, ann)
    approval_id = await pending_approval(settings, task_id)
    path = f"/v1/tasks/{task_id}/approvals/{approval_id}"

    def decide(decision: str, where: str = path) -> Callable[[Headers], Awaitable[httpx.Response]]:
        return lambda h: client.post(where, json={"decision": decision}, headers=h)

    first = await assert_replays(decide("approve"), ann, "a-1", 200)
    assert first.json()["status"] == "approved"
    assert (await decide("approve")(ann)).status_code == 409  # without the key: decided
    assert_mismatch(await decide("deny")(keyed(ann, "a-1")))
    assert await events(client, task_id, ann, "approval.decided") == 1
    his_task = await task(client, bob)
    his = f"/v1/tasks/{his_task}/approvals/{await pending_approval(settings, his_task)}"
    theirs = await decide("approve", his)(keyed(bob, "a-1"))
    assert theirs.status_code == 200
    assert REPLAYED not in theirs.headers

    raced = await task(client, ann)
    where = f"/v1/tasks/{raced}/approvals/{await pending_approval(settings, raced)}"
    answers = await at_once(decide("deny", where), ann, "a-race")
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    assert await events(client, raced, ann, "approval.decided") == 1
    assert await audited(client, root, "approval.decide") == 3


# -- redelivery -----------------------------------------------------------------------


async def failed_delivery(client: httpx.AsyncClient, settings: Settings, who: Headers) -> str:
    made = await client.post("/v1/tasks", json={"input": "a", "webhook_url": HOOK}, headers=who)
    assert (await client.post(f"/v1/tasks/{made.json()['id']}/cancel", headers=who)).is_success
    resources = await Resources.open(settings, role="test")
    try:
        async with resources.engine.begin() as conn:
            found = await conn.execute(
                text(
                    "UPDATE webhook_deliveries SET status = 'failed', finished_at = now() "
                    "WHERE task_id = :task RETURNING id"
                ),
                {"task": made.json()["id"]},
            )
            return str(found.scalar_one())
    finally:
        await resources.close()


async def test_a_redelivery_is_scheduled_once_per_key(
    client: httpx.AsyncClient, settings: Settings, ann: Headers, bob: Headers, root: Headers
) -> None:
    delivery = await failed_delivery(client, settings, ann)

    def redeliver(which: str) -> Callable[[Headers], Awaitable[httpx.Response]]:
        return lambda h: client.post(f"/v1/webhook-deliveries/{which}/redeliver", headers=h)

    first = await assert_replays(redeliver(delivery), ann, "r-1", 202)
    assert first.json()["status"] == "pending"
    assert (await redeliver(delivery)(ann)).status_code == 409  # without the key: under way
    assert_mismatch(
        await redeliver(await failed_delivery(client, settings, ann))(keyed(ann, "r-1"))
    )
    theirs = await redeliver(await failed_delivery(client, settings, bob))(keyed(bob, "r-1"))
    assert theirs.status_code == 202
    assert REPLAYED not in theirs.headers

    raced = await failed_delivery(client, settings, ann)
    answers = await at_once(redeliver(raced), ann, "r-race")
    assert {a.status_code for a in answers} == {202}
    assert len({a.text for a in answers}) == 1
    assert await audited(client, root, "webhook.redeliver") == 3


# -- answers with a secret shown once ---------------------------------------------------


async def test_a_webhook_endpoint_is_registered_once_per_key_and_its_secret_shown_once(
    client: httpx.AsyncClient, settings: Settings, ann: Headers, bob: Headers
) -> None:
    def register(description: str) -> Callable[[Headers], Awaitable[httpx.Response]]:
        body = {"url": HOOK, "description": description}
        return lambda h: client.post("/v1/webhooks", json=body, headers=h)

    first = await register("alerts")(keyed(ann, "w-1"))
    assert first.status_code == 201
    secret = first.json()["secret"]
    again = await register("alerts")(keyed(ann, "w-1"))
    assert again.status_code == 409
    assert again.headers["content-type"] == PROBLEM
    assert first.json()["id"] in again.json()["detail"]
    assert "shown only once" in again.json()["detail"]
    assert secret not in again.text
    assert await count(client, "/v1/webhooks", ann) == 1
    assert_mismatch(await register("other")(keyed(ann, "w-1")))
    assert (await register("alerts")(keyed(bob, "w-1"))).status_code == 201

    answers = await at_once(register("race"), ann, "w-race")
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409, 409]
    assert await count(client, "/v1/webhooks", ann) == 2
    resources = await Resources.open(settings, role="test")
    try:
        async with resources.engine.connect() as conn:
            stored = (await conn.execute(text("SELECT answer::text FROM idempotency_keys"))).all()
    finally:
        await resources.close()
    assert stored
    assert not any("whsec_" in row[0] for row in stored)


async def test_an_api_key_is_created_once_per_key_and_shown_once(
    client: httpx.AsyncClient, settings: Settings, root: Headers
) -> None:
    other_admin = await caller(settings, Role.ADMIN, "ops")

    def create(name: str) -> Callable[[Headers], Awaitable[httpx.Response]]:
        return lambda h: client.post("/v1/api-keys", json={"name": name}, headers=h)

    before = await count(client, "/v1/api-keys", root)
    first = await create("ci")(keyed(root, "k-1"))
    assert first.status_code == 201
    again = await create("ci")(keyed(root, "k-1"))
    assert again.status_code == 409
    assert again.headers["content-type"] == PROBLEM
    assert first.json()["id"] in again.json()["detail"]
    assert "shown only once" in again.json()["detail"]
    assert first.json()["key"] not in again.text
    assert await count(client, "/v1/api-keys", root) == before + 1
    assert_mismatch(await create("cd")(keyed(root, "k-1")))
    assert (await create("ci")(keyed(other_admin, "k-1"))).status_code == 201

    answers = await at_once(create("race"), root, "k-race")
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409, 409]
    assert await count(client, "/v1/api-keys", root) == before + 3


async def test_a_key_is_free_again_after_24_hours(
    client: httpx.AsyncClient, settings: Settings, ann: Headers
) -> None:
    first = await client.post("/v1/conversations", json={"title": "a"}, headers=keyed(ann, "old"))
    resources = await Resources.open(settings, role="test")
    try:
        async with resources.engine.begin() as conn:
            await conn.execute(
                text("UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 s'")
            )
    finally:
        await resources.close()

    again = await client.post("/v1/conversations", json={"title": "b"}, headers=keyed(ann, "old"))

    assert again.status_code == 201
    assert REPLAYED not in again.headers
    assert again.json()["id"] != first.json()["id"]
    replay = await client.post("/v1/conversations", json={"title": "b"}, headers=keyed(ann, "old"))
    assert replay.json()["id"] == again.json()["id"]


# -- the key itself, and its documentation ----------------------------------------------

CREATING = [
    "/v1/tasks",
    "/v1/tasks/{task_id}/cancel",
    "/v1/tasks/{task_id}/approvals/{approval_id}",
    "/v1/conversations",
    "/v1/conversations/{conversation_id}/messages",
    "/v1/webhooks",
    "/v1/webhook-deliveries/{delivery_id}/redeliver",
    "/v1/api-keys",
]


@pytest.mark.parametrize("path", CREATING)
@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", b"cl\xc3\xa9"])
async def test_a_malformed_key_is_422_problem_json(
    client: httpx.AsyncClient, root: Headers, path: str, key: str | bytes
) -> None:
    url = path.replace("{", "").replace("}", "")
    for name in ("task_id", "approval_id", "conversation_id", "delivery_id"):
        url = url.replace(name, str(uuid.uuid4()))
    headers: dict[str, Any] = {**root, "Idempotency-Key": key}
    answer = await client.post(url, json={}, headers=headers)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert "Idempotency-Key" in answer.json()["detail"]


async def test_a_key_of_255_printable_characters_is_accepted(
    client: httpx.AsyncClient, ann: Headers
) -> None:
    key = ("a b~!" * 51)[:255]
    answer = await client.post("/v1/conversations", json={}, headers=keyed(ann, key))
    assert answer.status_code == 201, answer.text


async def test_every_creating_post_documents_the_header(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    for path in CREATING:
        params = paths[path]["post"].get("parameters", [])
        [header] = [p for p in params if p["name"] == "Idempotency-Key"]
        assert header["in"] == "header"
        assert "409" in header["description"]
        assert header["schema"]["anyOf"][0]["maxLength"] == 255
