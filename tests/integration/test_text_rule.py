"""One text rule at the edge: NUL and unpaired surrogates, in any string a client sends
(body fields, JSON keys and nested values, query, path and header parameters, WebSocket
frames), are refused with a 422 problem naming the field, before anything is written;
integer parameters outside their stated bounds are refused the same way.

The walk reads the app's own OpenAPI document, so a new field or route is covered the
day it is added."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest
import structlog
from fastapi import FastAPI
from websockets.asyncio.client import connect

from chatsys.api.tasks.deps import submit_task
from chatsys.api.text import RULE_PATTERNS
from chatsys.infra.settings import Settings, WebhookSettings
from tests.streams import next_frame, serve
from tests.support import plain_dsn

PROBLEM = "application/problem+json"
NUL = "a\x00b"
SURROGATE = "a\ud800b"  # json.dumps writes it as the escape \ud800 (it has no UTF-8)
HOOK = "http://127.0.0.1:9/hook"  # allowed below; nothing is ever sent
TABLES = ("tasks", "steps", "conversations", "messages", "api_keys", "webhook_endpoints",
          "webhook_deliveries", "audit_logs", "task_events", "task_outbox")  # fmt: skip
RULE_TYPES = {"text_nul", "text_surrogate", "text_control"}

Loc = tuple[str | int, ...]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.webhooks = WebhookSettings(allow_private_networks=True)
    return settings


# -- reading the OpenAPI document ---------------------------------------------------------


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def variants(spec: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-null alternatives of a schema (``X | None`` is ``anyOf: [X, null]``)."""
    schema = resolve(spec, schema)
    for word in ("anyOf", "oneOf", "allOf"):
        if word in schema:
            found = []
            for option in schema[word]:
                found += variants(spec, option)
            return found
    return [] if schema.get("type") == "null" else [schema]


def minimal(spec: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A small valid value of a schema."""
    options = variants(spec, schema)
    if not options:
        return None
    schema = options[0]
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if schema.get("examples"):
        return schema["examples"][0]
    kind = schema.get("type")
    if kind == "object":
        return {
            name: minimal(spec, schema["properties"][name]) for name in schema.get("required", [])
        }
    if kind == "array":
        return [minimal(spec, schema["items"])] * schema.get("minItems", 0)
    if kind == "string":
        if schema.get("format") == "uuid":
            return str(uuid.uuid4())
        return "x" * max(1, schema.get("minLength", 1))
    if kind in ("integer", "number"):
        return schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1)
    if kind == "boolean":
        return False
    return "x"  # any JSON value


def poisoned(
    spec: dict[str, Any], schema: dict[str, Any], bad: str, depth: int = 0
) -> Iterator[tuple[Loc, Any]]:
    """Every way to put ``bad`` into one string of a value of ``schema``: (where the
    string sits, the value). A JSON object's keys and any-typed values count; a
    recursive schema (``JsonValue``) is followed a few levels down."""
    if depth > 4:
        return
    for option in variants(spec, schema):
        kind = option.get("type")
        if kind == "string":
            yield (), bad
        elif kind == "array":
            for loc, value in poisoned(spec, option["items"], bad, depth + 1):
                yield (0, *loc), [value]
        elif kind == "object" or (kind is None and "properties" in option):
            base = minimal(spec, option)
            for name, prop in option.get("properties", {}).items():
                for loc, value in poisoned(spec, prop, bad, depth + 1):
                    yield (name, *loc), {**base, name: value}
            extra = option.get("additionalProperties")
            if extra:
                inner = {} if extra is True else extra
                yield (), {**base, bad: minimal(spec, inner)}  # a key
                for _, value in poisoned(spec, inner, bad, depth + 1):
                    yield (), {**base, "k": value}
        elif kind is None:  # any JSON value: a string, and one nested deep
            yield (), bad
            yield (), {"deep": [1, {"er": bad}]}


def is_free_string(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    """A string whose only refusal of ``bad`` can be the text rule (not an enum, a UUID,
    a pattern of its own; the rule's patterns state the rule)."""
    return any(
        (
            o.get("type") in ("string", None)
            and not {"enum", "const", "format"} & set(o)
            and o.get("pattern", RULE_PATTERNS[0]) in RULE_PATTERNS
        )
        or (o.get("type") == "object" and bool(o.get("additionalProperties")))
        for o in variants(spec, schema)
    )


def location_of(loc: Loc) -> str:
    return ".".join(str(p) for p in loc)


def assert_refused(answer: httpx.Response, where: Loc, *, by_rule: bool, what: str) -> None:
    assert answer.status_code == 422, (what, answer.status_code, answer.text)
    assert answer.headers["content-type"] == PROBLEM, what
    problem = answer.json()
    errors = problem["errors"]
    prefix = location_of(where)
    # Only this field is wrong: the rest of the body was valid.
    assert errors, what
    assert all(e["location"].startswith(prefix) for e in errors), (what, errors)
    assert problem["detail"].startswith(prefix), (what, problem["detail"])
    if by_rule:
        assert {e["type"] for e in errors} <= RULE_TYPES, (what, errors)


# -- the walk ------------------------------------------------------------------------------


async def count_rows(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(plain_dsn(database_url))
    try:
        return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}
    finally:
        await conn.close()


async def existing_ids(client: httpx.AsyncClient) -> dict[str, str]:
    """Real objects for the path parameters, so that a request that slipped through
    the rule would write something the row count sees."""
    conversation = await client.post("/v1/conversations", json={"title": "walk"})
    task = await client.post("/v1/tasks", json={"input": "hello"})
    hook = await client.post("/v1/webhooks", json={"url": HOOK})
    key = await client.post("/v1/api-keys", json={"name": "walk"})
    for made in (conversation, task, hook, key):
        assert made.status_code in (201, 202), made.text
    return {
        "conversation_id": conversation.json()["id"],
        "task_id": task.json()["id"],
        "webhook_id": hook.json()["id"],
        "key_id": key.json()["id"],
    }


def fill(path: str, params: list[dict[str, Any]], ids: dict[str, str], **bad: str) -> str:
    for param in params:
        if param["in"] == "path":
            name = param["name"]
            value = bad.get(name) or ids.get(name)
            if value is None:
                uuid_typed = param["schema"].get("format") == "uuid"
                value = str(uuid.uuid4()) if uuid_typed else "time"
            path = path.replace("{" + name + "}", quote(value, safe=""))
    return path


def resolve_field(spec: dict[str, Any], schema: dict[str, Any], loc: Loc) -> dict[str, Any]:
    """The schema of the value at ``loc`` (the innermost string's, or the object's
    whose key or any-typed value it is)."""
    for part in loc:
        options = variants(spec, schema)
        if isinstance(part, int):
            schema = next(o for o in options if o.get("type") == "array")["items"]
        else:
            option = next(o for o in options if part in o.get("properties", {}))
            schema = option["properties"][part]
    return schema


JSON = {"content-type": "application/json"}
SLOT = "__bad__"  # where the path parameter under test goes (quote() keeps it)


async def check_body(
    client: httpx.AsyncClient, spec: dict[str, Any], method: str, url: str, schema: dict[str, Any]
) -> int:
    """Every string of the JSON body, with NUL and with a lone surrogate."""
    checked = 0
    for bad in (NUL, SURROGATE):
        for loc, value in poisoned(spec, schema, bad):
            raw = json.dumps(value).encode()  # ASCII: \u0000, \ud800
            answer = await client.request(method, url, content=raw, headers=JSON)
            by_rule = is_free_string(spec, resolve_field(spec, schema, loc))
            what = f"{method} {url} body {loc} {bad!r}"
            assert_refused(answer, ("body", *loc), by_rule=by_rule, what=what)
            checked += 1
    return checked


async def check_parameter(
    client: httpx.AsyncClient,
    spec: dict[str, Any],
    method: str,
    url: str,
    param: dict[str, Any],
    *,
    body: bytes | None,
) -> str | None:
    """NUL in a string parameter, out-of-range numbers in an integer one; what kind of
    check it was."""
    options = variants(spec, param["schema"])
    kinds = {o.get("type") for o in options}
    name, where = param["name"], param["in"]
    what = f"{method} {url} {where} {name}"
    send: dict[str, Any] = {"content": body, "headers": dict(JSON)}
    if "string" in kinds:
        # A query or path arrives percent-encoded and is decoded as UTF-8 with
        # replacement, so a lone surrogate cannot reach the app there (it comes as
        # U+FFFD); headers are Latin-1. NUL can, everywhere.
        if where == "query":
            answer = await client.request(method, url, params={name: NUL}, **send)
        elif where == "path":
            answer = await client.request(method, url.replace(SLOT, quote(NUL)), **send)
        else:
            send["headers"][name] = NUL
            answer = await client.request(method, url, **send)
        assert_refused(answer, (where, name), by_rule=is_free_string(spec, param["schema"]),
                       what=what)  # fmt: skip
        if where == "query":  # the UTF-8 of U+D800, percent-encoded
            answer = await client.request(method, f"{url}?{name}=%ED%A0%80", **send)
            assert answer.status_code < 500, (what, answer.text)
            assert answer.is_success or answer.headers["content-type"] == PROBLEM, what
        return str(where)
    if "integer" in kinds and where == "query":
        integer = next(o for o in options if o.get("type") == "integer")
        assert "maximum" in integer, f"{what}: states no maximum"
        for number in (2**64, integer["minimum"] - 1) if "minimum" in integer else (2**64,):
            answer = await client.request(method, url, params={name: str(number)}, **send)
            assert_refused(answer, (where, name), by_rule=False, what=f"{what}={number}")
        return "integer"
    return None


async def test_every_string_and_integer_a_client_sends_is_checked_at_the_edge(
    app: FastAPI, client: httpx.AsyncClient, database_url: str
) -> None:
    spec = app.openapi()
    ids = await existing_ids(client)
    before = await count_rows(database_url)
    checked: Counter[str] = Counter()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            params: list[dict[str, Any]] = operation.get("parameters", [])
            url = fill(path, params, ids)
            content = operation.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            body = None if schema is None else json.dumps(minimal(spec, schema)).encode()
            if schema is not None:
                checked["body"] += await check_body(client, spec, method.upper(), url, schema)
            for param in params:
                target = fill(path, params, ids, **{param["name"]: SLOT})
                kind = await check_parameter(client, spec, method.upper(), target, param, body=body)
                checked[kind or "other"] += 1
    # (when written: body 110, query 16, path 21, header 3, integer 9)
    floors = {"body": 100, "query": 5, "path": 2, "header": 1, "integer": 5}
    assert all(checked[kind] >= least for kind, least in floors.items()), checked
    assert await count_rows(database_url) == before  # nothing half-written


# -- WebSocket frames ----------------------------------------------------------------------


@pytest.fixture
async def host(app: FastAPI) -> AsyncIterator[str]:
    async with serve(app) as where:
        yield where


async def test_a_bad_websocket_frame_gets_an_error_frame_and_the_socket_stays_open(
    host: str, database_url: str
) -> None:
    async with httpx.AsyncClient(base_url=f"http://{host}") as http:
        conversation = (await http.post("/v1/conversations", json={"title": "ws"})).json()["id"]
    before = await count_rows(database_url)
    async with connect(f"ws://{host}/v1/ws") as ws:
        bad_frames: list[tuple[dict[str, Any], str]] = [
            ({"content": NUL}, "content"),
            ({"content": "hi", "title": "tab\there"}, "title"),
            ({"content": "hi", "metadata": {NUL: 1}}, "metadata"),
            ({"content": "hi", "metadata": {"k": {"deep": [NUL]}}}, "metadata"),
            ({"content": "hi", "agents": [NUL]}, "agents.0"),
        ]
        for frame, where in bad_frames:
            message = {"type": "send_message", "conversation_id": conversation, "id": "m"}
            await ws.send(json.dumps({**message, **frame}))
            answer = await next_frame(ws)
            assert (answer["type"], answer["code"], answer["id"]) == ("error", "invalid_frame", "m")
            assert answer["message"].startswith(where), answer
            await ws.send(json.dumps({"type": "ping", "id": "p"}))
            assert await next_frame(ws) == {"type": "pong", "id": "p"}
        # A lone surrogate is not valid JSON text on the wire (RFC 8259 asks for Unicode).
        await ws.send('{"type": "ping", "id": "a\\ud800"}')
        assert (await next_frame(ws))["code"] == "invalid_json"
        far = {"type": "subscribe", "task_id": str(uuid.uuid4()), "after": 2**64, "id": "s"}
        await ws.send(json.dumps(far))
        answer = await next_frame(ws)
        assert (answer["code"], answer["id"]) == ("invalid_frame", "s")
        assert answer["message"].startswith("after"), answer
        await ws.send(json.dumps({"type": "ping", "id": "p2"}))
        assert await next_frame(ws) == {"type": "pong", "id": "p2"}
    assert await count_rows(database_url) == before


class _Exploding:
    async def execute(self, **_: Any) -> Any:
        raise RuntimeError("secret internal state")


async def test_an_unexpected_error_on_the_socket_is_logged_and_answered(
    app: FastAPI, host: str
) -> None:
    app.dependency_overrides[submit_task] = _Exploding
    conversation = str(uuid.uuid4())
    with structlog.testing.capture_logs() as logs:
        async with connect(f"ws://{host}/v1/ws") as ws:
            await ws.send(json.dumps({"type": "send_message", "conversation_id": conversation,
                                      "content": "hello", "id": "m"}))  # fmt: skip
            answer = await next_frame(ws)
            assert (answer["type"], answer["code"], answer["id"]) == ("error", "internal", "m")
            assert "secret" not in answer["message"]
            await ws.send(json.dumps({"type": "ping", "id": "p"}))
            assert await next_frame(ws) == {"type": "pong", "id": "p"}
    failed = [e for e in logs if e["event"] == "chatsys.api.ws_frame_failed"]
    assert len(failed) == 1, logs
    assert failed[0]["log_level"] == "error"
    assert failed[0]["request_id"] in answer["message"]
