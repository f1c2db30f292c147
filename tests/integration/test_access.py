"""API keys, roles, object ownership, rate limits, the audit trail and security
headers, over real HTTP and WebSocket with real Postgres and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIWebSocketRoute
from websockets.asyncio.client import connect

from chatsys.bootstrap import ConfigurationError, build_app
from chatsys.bootstrap.cli import create_key
from chatsys.domain.access.model import Role
from chatsys.infra.settings import AuthSettings, Environment, LimitSettings, Settings
from tests.streams import read_sse, read_ws, serve

PUBLIC = {"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/openapi.json"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.auth = AuthSettings(enabled=True, cache_seconds=5)
    # The walk below makes hundreds of keyless requests from one IP.
    settings.limits = LimitSettings(enabled=True, anonymous_requests=100_000, member_active_tasks=2)
    return settings


@pytest.fixture
async def host(app: FastAPI) -> AsyncIterator[str]:
    async with serve(app) as where:
        yield where


@pytest.fixture
async def http(host: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://{host}", timeout=30) as client:
        yield client


async def new_key(settings: Settings, role: Role, subject: str | None = None) -> str:
    _, full = await create_key(settings, name=f"{role.value} key", role=role, subject=subject)
    return full


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def admin(settings: Settings) -> str:
    return await new_key(settings, Role.ADMIN, subject="root")


def websocket_paths(app: FastAPI) -> list[str]:
    """WebSocket routes are not in the OpenAPI document; find them in the router (an
    included router keeps its own routes, under its prefix)."""
    found = []
    for route in app.routes:
        if isinstance(route, APIWebSocketRoute):
            found.append(route.path)
        inner = getattr(route, "original_router", None)
        if inner is not None:
            prefix = getattr(getattr(route, "include_context", None), "prefix", "") or ""
            found += [prefix + r.path for r in inner.routes if isinstance(r, APIWebSocketRoute)]
    return sorted(found)


def fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: "time" if "name" in m.group(0) else str(uuid.uuid4()),
                  path)  # fmt: skip


async def test_every_route_but_the_public_ones_needs_a_valid_key(
    http: httpx.AsyncClient, host: str, app: FastAPI, settings: Settings, admin: str
) -> None:
    revoked = await new_key(settings, Role.MEMBER)
    key_id = (await http.get("/v1/me", headers=auth(revoked))).json()["key_id"]
    assert (await http.delete(f"/v1/api-keys/{key_id}", headers=auth(admin))).status_code == 204
    bad_credentials: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer csk_nope"},
        {"Authorization": "Bearer csk_AAAAAAAAAAAA_" + "B" * 40},  # well-formed, unknown
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        auth(revoked),
    ]
    spec = app.openapi()
    checked = 0
    bodies: set[str] = set()
    for path, operations in spec["paths"].items():
        if path in PUBLIC:
            continue
        assert path.startswith("/v1/"), path
        for method in operations:
            for headers in bad_credentials:
                answer = await http.request(method.upper(), fill(path), headers=headers)
                assert answer.status_code == 401, (method, path, headers, answer.text)
                assert answer.headers["content-type"] == "application/problem+json"
                assert answer.headers["www-authenticate"] == 'Bearer realm="chatsys"'
                body = answer.json()
                assert body["instance"] == answer.request.url.path
                assert body["request_id"] == answer.headers["x-request-id"]
                del body["instance"], body["request_id"]
                bodies.add(json.dumps(body, sort_keys=True))
                checked += 1
    assert checked > 100  # (34 operations x 6 when written)
    assert len(bodies) == 1  # the same, whatever was wrong with the key
    assert json.loads(bodies.pop())["detail"].startswith("a valid API key is required")
    sockets = websocket_paths(app)
    assert sockets == ["/v1/tasks/{task_id}/stream", "/v1/ws"]  # the walk found them all
    for path in sockets:
        for headers in bad_credentials:
            closed = await read_ws(f"ws://{host}{fill(path)}", additional_headers=headers)
            assert closed.code == 4401, (path, headers)
    for path in PUBLIC - {"/docs/oauth2-redirect"}:
        assert (await http.get(path)).status_code in (200, 503), path


async def test_members_see_only_their_own_objects(
    http: httpx.AsyncClient, host: str, settings: Settings, admin: str
) -> None:
    a = auth(await new_key(settings, Role.MEMBER, subject="alice"))
    b = auth(await new_key(settings, Role.MEMBER, subject="bob"))
    conversation = (await http.post("/v1/conversations", json={}, headers=a)).json()["id"]
    task = (await http.post("/v1/tasks", json={"input": "hi", "conversation_id": conversation},
                            headers=a)).json()["id"]  # fmt: skip
    own = await http.get(f"/v1/tasks/{task}", headers=a)
    assert own.status_code == 200
    for method, path in [
        ("GET", f"/v1/tasks/{task}"),
        ("GET", f"/v1/tasks/{task}/events"),
        ("POST", f"/v1/tasks/{task}/cancel"),
        ("GET", f"/v1/conversations/{conversation}"),
        ("GET", f"/v1/conversations/{conversation}/messages"),
        ("POST", f"/v1/conversations/{conversation}/messages"),
    ]:
        body = {"content": "x"} if path.endswith("messages") and method == "POST" else None
        answer = await http.request(method, path, headers=b, json=body)
        assert answer.status_code == 404, (method, path, answer.text)
    assert (await read_sse(http, f"/v1/tasks/{task}/events", headers=b)).status == 404
    closed = await read_ws(f"ws://{host}/v1/tasks/{task}/stream", additional_headers=b)
    assert closed.code == 4404
    async with connect(f"ws://{host}/v1/ws", additional_headers=b) as ws:
        await ws.send(json.dumps({"type": "subscribe", "task_id": task, "id": "x"}))
        assert json.loads(await ws.recv())["code"] == "not_found"
        await ws.send(json.dumps({"type": "subscribe", "conversation_id": conversation}))
        assert json.loads(await ws.recv())["code"] == "not_found"
    assert (await http.get("/v1/tasks", headers=b)).json()["items"] == []
    assert (await http.get("/v1/conversations", headers=b)).json()["items"] == []
    assert [t["id"] for t in (await http.get("/v1/tasks", headers=a)).json()["items"]] == [task]
    # Admins see everyone's; the task is still queued: B's cancel changed nothing.
    seen = await http.get(f"/v1/tasks/{task}", headers=auth(admin))
    assert seen.json()["status"] == "queued"
    assert task in [
        t["id"] for t in (await http.get("/v1/tasks", headers=auth(admin))).json()["items"]
    ]


async def test_roles_decide_what_a_key_may_do(
    http: httpx.AsyncClient, host: str, settings: Settings, admin: str
) -> None:
    viewer = auth(await new_key(settings, Role.VIEWER, subject="carol"))
    member = auth(await new_key(settings, Role.MEMBER, subject="carol"))
    task = (await http.post("/v1/tasks", json={"input": "hi"}, headers=member)).json()["id"]
    for method, path, body in [
        ("POST", "/v1/tasks", {"input": "x"}),
        ("POST", f"/v1/tasks/{task}/cancel", None),
        ("POST", "/v1/conversations", {}),
        ("POST", "/v1/webhooks", {"url": "https://example.com/hook"}),
    ]:
        answer = await http.request(method, path, json=body, headers=viewer)
        assert answer.status_code == 403, (path, answer.text)
        assert answer.json()["detail"] == "this needs the admin or member role; your key is viewer"
    assert (await http.get(f"/v1/tasks/{task}", headers=viewer)).status_code == 200  # same subject
    for method, path, body in [
        ("POST", "/v1/api-keys", {"name": "x"}),
        ("GET", "/v1/api-keys", None),
        ("DELETE", f"/v1/api-keys/{uuid.uuid4()}", None),
        ("GET", "/v1/audit-logs", None),
        ("POST", "/v1/mcp/servers", {"name": "x", "command": "true"}),
    ]:
        answer = await http.request(method, path, json=body, headers=member)
        assert answer.status_code == 403, (path, answer.text)
    async with connect(f"ws://{host}/v1/ws", additional_headers=viewer) as ws:
        conversation = str(uuid.uuid4())
        await ws.send(json.dumps({"type": "send_message", "conversation_id": conversation,
                                  "content": "x", "id": "m"}))  # fmt: skip
        frame = json.loads(await ws.recv())
        assert (frame["type"], frame["code"]) == ("error", "forbidden")
    assert (await http.get("/v1/api-keys", headers=auth(admin))).status_code == 200
    me = (await http.get("/v1/me", headers=viewer)).json()
    assert (me["subject"], me["role"]) == ("carol", "viewer")


async def test_mass_assignment_is_refused(
    http: httpx.AsyncClient, settings: Settings, admin: str
) -> None:
    member = auth(await new_key(settings, Role.MEMBER, subject="dave"))
    for path, body in [
        ("/v1/tasks", {"input": "x", "owner": "root"}),
        ("/v1/tasks", {"input": "x", "status": "succeeded"}),
        ("/v1/tasks", {"input": "x", "id": str(uuid.uuid4())}),
        ("/v1/conversations", {"title": "x", "owner": "root"}),
        ("/v1/webhooks", {"url": "https://example.com/h", "owner": "root"}),
    ]:
        answer = await http.post(path, json=body, headers=member)
        assert answer.status_code == 422, (path, body, answer.text)
        assert answer.json()["errors"][0]["type"] == "extra_forbidden"
    key_body = {"name": "k", "role": "viewer", "revoked_at": None}
    made = await http.post("/v1/api-keys", json=key_body, headers=auth(admin))
    assert made.status_code == 422
    assert (await http.get("/v1/tasks", headers=member)).json()["items"] == []
    assert (await http.get("/v1/conversations", headers=member)).json()["items"] == []


async def test_request_rate_is_limited_across_api_processes(settings: Settings) -> None:
    settings.limits = LimitSettings(enabled=True, member_requests=6, period=60)
    key = auth(await new_key(settings, Role.MEMBER))
    apps = [build_app(settings), build_app(settings)]  # two processes' worth of state
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for application in apps:
            await stack.enter_async_context(application.router.lifespan_context(application))
            transport = httpx.ASGITransport(app=application)
            clients.append(
                await stack.enter_async_context(
                    httpx.AsyncClient(transport=transport, base_url="http://chatsys.test")
                )
            )
        answers = [await clients[i % 2].get("/v1/me", headers=key) for i in range(8)]
    assert [a.status_code for a in answers] == [200] * 6 + [429] * 2
    assert [int(a.headers["ratelimit-remaining"]) for a in answers[:6]] == [5, 4, 3, 2, 1, 0]
    refused = answers[6]
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 10
    assert refused.headers["ratelimit-policy"] == "6;w=60"
    assert refused.json()["detail"].startswith("too many requests: 6 per 60 s")


async def test_leased_tokens_never_exceed_a_larger_limit_across_processes(
    settings: Settings,
) -> None:
    settings.limits = LimitSettings(enabled=True, member_requests=200, period=3600)
    key = auth(await new_key(settings, Role.MEMBER))
    apps = [build_app(settings), build_app(settings)]
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for application in apps:
            await stack.enter_async_context(application.router.lifespan_context(application))
            transport = httpx.ASGITransport(app=application)
            clients.append(
                await stack.enter_async_context(
                    httpx.AsyncClient(transport=transport, base_url="http://chatsys.test")
                )
            )
        codes = [(await clients[i % 2].get("/v1/me", headers=key)).status_code
                 for i in range(260)]  # fmt: skip
    allowed = codes.count(200)
    assert allowed <= 200  # never more than the limit, whichever process answered
    assert allowed >= 200 - 2 * 4  # at most one unused lease (200 // 50) per process
    assert codes.count(429) == 260 - allowed


async def test_running_task_cap(http: httpx.AsyncClient, settings: Settings) -> None:
    key = auth(await new_key(settings, Role.MEMBER))
    codes = [(await http.post("/v1/tasks", json={"input": f"t{i}"}, headers=key)).status_code
             for i in range(3)]  # fmt: skip
    assert codes[:2] == [202, 202]
    assert codes[2] == 429
    refused = await http.post("/v1/tasks", json={"input": "again"}, headers=key)
    assert refused.headers["retry-after"] == "5"
    assert "2 of your tasks are queued or running; the limit is 2" in refused.json()["detail"]
    listed = (await http.get("/v1/tasks", headers=key)).json()["items"]
    assert len(listed) == 2  # the refused ones left nothing behind
    cancelled = await http.post(f"/v1/tasks/{listed[0]['id']}/cancel", headers=key)
    assert cancelled.status_code == 200
    assert (await http.post("/v1/tasks", json={"input": "t"}, headers=key)).status_code == 202


async def test_audit_trail_of_a_session_names_the_actors_and_no_secret(
    http: httpx.AsyncClient, settings: Settings, admin: str, capfd: pytest.CaptureFixture[str]
) -> None:
    root = auth(admin)
    admin_id = (await http.get("/v1/me", headers=root)).json()["key_id"]
    made = await http.post("/v1/api-keys", json={"name": "eve's key", "role": "member"},
                           headers=root)  # fmt: skip
    assert made.status_code == 201
    member_key, member_id = made.json()["key"], made.json()["id"]
    member = auth(member_key)
    task = (await http.post("/v1/tasks", json={"input": "hello"}, headers=member)).json()["id"]
    assert (await http.post(f"/v1/tasks/{task}/cancel", headers=member)).status_code == 200
    assert (await http.delete(f"/v1/api-keys/{member_id}", headers=root)).status_code == 204
    assert (await http.get("/v1/me", headers=member)).status_code == 401  # at once

    page = await http.get("/v1/audit-logs", params={"limit": 500}, headers=root)
    entries = page.json()["items"]
    actions = [(e["action"], e["actor"], e["target"]) for e in reversed(entries)]
    expected = [
        ("api_key.create", f"key:{admin_id}", f"api_key:{member_id}"),
        ("task.create", f"key:{member_id}", f"task:{task}"),
        ("task.cancel", f"key:{member_id}", f"task:{task}"),
        ("api_key.revoke", f"key:{admin_id}", f"api_key:{member_id}"),
    ]
    assert [a for a in actions if a[0] in {"api_key.create", "api_key.revoke", "task.create",
                                           "task.cancel"}][-4:] == expected  # fmt: skip
    lifecycle = [e["action"] for e in entries if e["task_id"] == task]
    assert {"task.created", "task.cancelled"} <= set(lifecycle)
    only_cancels = await http.get("/v1/audit-logs", params={"action": "task.cancel"}, headers=root)
    assert [e["target"] for e in only_cancels.json()["items"]] == [f"task:{task}"]
    by_actor = await http.get("/v1/audit-logs", params={"actor": f"key:{member_id}"}, headers=root)
    assert {e["action"] for e in by_actor.json()["items"]} == {"task.create", "task.cancel"}
    secret = member_key.rsplit("_", 1)[1]
    assert secret not in page.text
    listed = await http.get("/v1/api-keys", headers=root)
    assert secret not in listed.text
    assert all("key" not in item for item in listed.json()["items"])
    out, err = capfd.readouterr()
    assert secret not in out + err
    assert admin.rsplit("_", 1)[1] not in out + err


async def test_stream_tickets_keep_keys_out_of_urls(
    http: httpx.AsyncClient, host: str, settings: Settings, admin: str
) -> None:
    key = await new_key(settings, Role.MEMBER, subject="frank")
    task = (await http.post("/v1/tasks", json={"input": "x"}, headers=auth(key))).json()["id"]
    issued = await http.post("/v1/stream-tickets", headers=auth(key))
    assert issued.status_code == 201
    ticket = issued.json()["ticket"]
    assert key not in ticket
    # A ticket works for streams only (and a refused use does not spend it).
    assert (await http.get(f"/v1/tasks/{task}", params={"ticket": ticket})).status_code == 401
    async with connect(f"ws://{host}/v1/tasks/{task}/stream?ticket={ticket}") as ws:
        assert json.loads(await ws.recv())["type"] == "task.created"
    # And dies with its key.
    unused = (await http.post("/v1/stream-tickets", headers=auth(key))).json()["ticket"]
    key_id = (await http.get("/v1/me", headers=auth(key))).json()["key_id"]
    await http.delete(f"/v1/api-keys/{key_id}", headers=auth(admin))
    closed = await read_ws(f"ws://{host}/v1/tasks/{task}/stream?ticket={unused}")
    assert closed.code == 4401


async def test_a_stream_ticket_opens_one_stream_only(
    http: httpx.AsyncClient, host: str, settings: Settings
) -> None:
    key = await new_key(settings, Role.MEMBER, subject="grace")
    task = (await http.post("/v1/tasks", json={"input": "x"}, headers=auth(key))).json()["id"]

    async def ticket() -> str:
        issued = await http.post("/v1/stream-tickets", headers=auth(key))
        assert issued.status_code == 201
        return str(issued.json()["ticket"])

    socket_ticket = await ticket()
    url = f"ws://{host}/v1/tasks/{task}/stream?ticket={socket_ticket}"
    first = await read_ws(url, stop_after=1)
    assert [e["type"] for e in first.events] == ["task.created"]
    again = await read_ws(url, stop_after=1)  # (were it accepted, it would not hang)
    assert (again.code, again.events) == (4401, [])
    # The same ticket is spent for the other kind of stream too.
    spent = await read_sse(
        http, f"/v1/tasks/{task}/events", params={"ticket": socket_ticket}, stop_after=1
    )
    assert spent.status == 401

    sse_ticket = await ticket()
    opened = await read_sse(
        http, f"/v1/tasks/{task}/events", params={"ticket": sse_ticket}, stop_after=1
    )
    assert (opened.status, [e["type"] for e in opened.events]) == (200, ["task.created"])
    reused = await http.get(
        f"/v1/tasks/{task}/events",
        params={"ticket": sse_ticket},
        headers={"Accept": "text/event-stream"},
    )
    assert reused.status_code == 401
    assert reused.headers["content-type"] == "application/problem+json"
    assert reused.json()["instance"] == f"/v1/tasks/{task}/events"  # no query string in it
    async with asyncio.timeout(10):  # /v1/ws says nothing until asked: do not wait forever
        multiplexed = await read_ws(f"ws://{host}/v1/ws?ticket={sse_ticket}")
    assert multiplexed.code == 4401


async def test_security_headers_and_limits_on_every_kind_of_answer(
    http: httpx.AsyncClient, settings: Settings, admin: str
) -> None:
    answers = {
        "json": await http.get("/healthz"),
        "docs": await http.get("/docs"),
        "401": await http.get("/v1/tasks"),
        "404": await http.get(f"/v1/tasks/{uuid.uuid4()}", headers=auth(admin)),
        "422": await http.post("/v1/tasks", json={}, headers=auth(admin)),
        "413": await http.post("/v1/tasks", content=b"x" * (300 * 1024),
                               headers={**auth(admin), "content-type": "application/json"}),
    }  # fmt: skip
    assert answers["413"].status_code == 413
    for kind, answer in answers.items():
        headers = answer.headers
        assert headers["x-content-type-options"] == "nosniff", kind
        assert headers["x-frame-options"] == "DENY", kind
        assert headers["referrer-policy"] == "no-referrer", kind
        assert "frame-ancestors 'none'" in headers["content-security-policy"], kind
        assert "strict-transport-security" not in headers  # production only
    assert "https://cdn.jsdelivr.net" in answers["docs"].headers["content-security-policy"]
    assert answers["json"].headers["content-security-policy"].startswith("default-src 'none'")
    assert answers["404"].headers["cache-control"] == "no-store"
    assert "access-control-allow-origin" not in answers["json"].headers  # no CORS by default


async def test_production_will_not_serve_without_a_key(settings: Settings) -> None:
    production = settings.model_copy(
        update={
            "environment": Environment.PRODUCTION,
            "api": settings.api.model_copy(update={"trusted_hosts": ["chatsys.test"]}),
        }
    )
    application = build_app(production)
    with pytest.raises(ConfigurationError, match="no active API key"):
        async with application.router.lifespan_context(application):
            pass
    key = await new_key(settings, Role.ADMIN)
    application = build_app(production)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://chatsys.test") as c:
            me = await c.get("/v1/me", headers=auth(key))
            assert me.status_code == 200
            assert me.headers["strict-transport-security"].startswith("max-age=")
            wrong_host = await c.get("/v1/me", headers={**auth(key), "host": "evil.example"})
            assert wrong_host.status_code == 400
