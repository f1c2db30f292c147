"""The OpenAPI document types what the server sends: one schema per event type, the
/v1/ws frames, and examples that pass the server's own validation.

(Real answers, events and frames are checked against the same document in
``tests/integration/test_typed_document.py``.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import pytest
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import TypeAdapter

from chatsys.api.errors import DOMAIN_ERRORS, UNMAPPED
from chatsys.api.streaming import router as ws_router
from chatsys.api.streaming.frames import ErrorCode
from chatsys.bootstrap import build_app
from chatsys.domain.shared.errors import DomainError
from chatsys.domain.tasks.model import EventType
from chatsys.infra.settings import Settings
from tests.document import JSON, REF, Document


@pytest.fixture(scope="module")
def app_routes() -> list[RouteContext]:
    """Every HTTP route (FastAPI keeps included routers whole: their routes' contexts)."""
    return [
        r
        for r in iter_route_contexts(build_app(Settings()).routes)
        if isinstance(r.original_route, APIRoute) and r.include_in_schema
    ]


@pytest.fixture(scope="module")
def doc() -> Document:
    return Document(build_app(Settings()).openapi())


def test_every_event_type_has_one_schema_with_a_typed_data(doc: Document) -> None:
    union = doc.schemas["TaskEvent"]
    mapping = union["discriminator"]["mapping"]
    assert union["discriminator"]["propertyName"] == "type"
    assert sorted(mapping) == sorted(EventType)  # a new event type needs its schema
    assert len(union["oneOf"]) == len(EventType)
    for kind, ref in mapping.items():
        frame = doc.resolve({"$ref": ref})
        assert set(frame["required"]) == {"task_id", "seq", "type", "data", "ts"}, kind
        assert frame["properties"]["type"]["const"] == kind
        data = doc.resolve(frame["properties"]["data"])
        assert data["properties"], kind  # named fields, not a free-form object
        assert set(data["required"]) == set(data["properties"]), kind  # always all sent
    # The page, the SSE answer and the WebSocket routes all name this one schema.
    page = doc.schemas["EventPageOut"]["properties"]["items"]["items"]
    assert page == {"$ref": REF + "TaskEvent"}
    events = doc.spec["paths"]["/v1/tasks/{task_id}/events"]["get"]
    sse = events["responses"]["200"]["content"]["text/event-stream"]
    assert sse["x-sse-events"][0]["data"] == {"$ref": REF + "TaskEvent"}
    assert {e["event"] for e in sse["x-sse-events"][1:]} == {"overflow", "reconnect"}
    sockets = doc.spec["x-websockets"]
    assert sockets["/v1/tasks/{task_id}/stream"]["serverFrames"] == {"$ref": REF + "TaskEvent"}
    ws = doc.resolve(sockets["/v1/ws"]["serverFrames"])
    event_frame = doc.resolve({"$ref": ws["discriminator"]["mapping"]["event"]})
    assert event_frame["properties"]["event"] == {"$ref": REF + "TaskEvent"}
    assert "EventOut" not in doc.schemas  # the page's runtime model is not documented


def test_the_ws_frames_are_the_ones_the_server_parses_and_sends(doc: Document) -> None:
    client = doc.resolve(doc.spec["x-websockets"]["/v1/ws"]["clientFrames"])
    assert sorted(client["discriminator"]["mapping"]) == sorted(ws_router._FRAME_TYPES)
    server = doc.resolve(doc.spec["x-websockets"]["/v1/ws"]["serverFrames"])
    assert sorted(server["discriminator"]["mapping"]) == sorted(
        ["subscribed", "event", "unsubscribed", "message_accepted", "pong", "error"]
    )
    # Every code an error frame can carry is in the documented enum: the router's own,
    # and each of the error table's (and an unmapped error's).
    codes = set(get_args(ErrorCode))
    error = doc.resolve({"$ref": server["discriminator"]["mapping"]["error"]})
    assert set(error["properties"]["code"]["enum"]) == codes
    source = Path(ws_router.__file__).read_text()
    literal = set(re.findall(r'self\.error\(\s*[\w.]+,\s*"(\w+)"', source))
    assert literal >= {"invalid_json", "invalid_frame", "already_subscribed", "internal"}
    assert literal <= codes
    kinds: list[type[DomainError]] = [*DOMAIN_ERRORS, DomainError]
    for kind in kinds:
        error_of_kind = Exception.__new__(kind)  # its type decides; no message needed
        assert ws_router._error_code(error_of_kind) in codes, kind
    assert UNMAPPED[1].replace("-", "_") in codes


def test_every_example_is_valid_against_its_schema(doc: Document) -> None:
    checked = 0
    for where, schema, example in doc.examples():
        if where.startswith("/components/schemas/WsClientFrame"):
            continue  # requests: below, with the server's parser
        try:
            doc.check(schema, example)
        except AssertionError as exc:
            raise AssertionError(f"{where}: {exc}") from None
        checked += 1
    assert checked > 60  # (every event type's, the frames', the problems', ...)


def _body_model(route: RouteContext) -> Any:
    assert route.body_field is not None
    return route.body_field.field_info.annotation


def test_request_examples_pass_the_servers_own_validation(
    doc: Document, app_routes: list[RouteContext]
) -> None:
    """Each request body made of the document's examples is valid for the document and
    for the route's own model (the text rule, lengths, patterns: what answers 422)."""
    bodies = 0
    for route in app_routes:
        if route.body_field is None:
            continue
        for method in route.methods or ():
            operation = doc.spec["paths"][route.path_format][method.lower()]
            schema = operation["requestBody"]["content"][JSON]["schema"]
            body = doc.exemplary(schema)
            doc.check(schema, body)
            TypeAdapter(_body_model(route)).validate_python(body)
            bodies += 1
    assert bodies >= 10
    # Each field example on its own, with the field's validation (the model's own).
    fields = 0
    models = {r.body_field.field_info.annotation for r in app_routes if r.body_field is not None}
    for model in _nested(models):
        for name, info in model.model_fields.items():
            for value in info.examples or []:
                empty = model.model_construct()
                model.__pydantic_validator__.validate_assignment(empty, name, value)
                fields += 1
    assert fields >= 5


def _nested(models: set[Any]) -> set[Any]:
    found: set[Any] = set()
    pending = [m for m in models if hasattr(m, "model_fields")]
    while pending:
        model = pending.pop()
        if model in found:
            continue
        found.add(model)
        for info in model.model_fields.values():
            for arg in _types(info.annotation):
                if hasattr(arg, "model_fields"):
                    pending.append(arg)
    return found


def _types(annotation: Any) -> list[Any]:
    args = get_args(annotation)
    return [annotation] if not args else [t for a in args for t in _types(a)]


def test_ws_client_frame_examples_pass_the_servers_parser(doc: Document) -> None:
    examples = doc.schemas["WsClientFrame"]["examples"]
    assert sorted({e["type"] for e in examples}) == sorted(ws_router._FRAME_TYPES)
    for example in examples:
        doc.check(doc.component("WsClientFrame"), example)
        ws_router._CLIENT_FRAME.validate_python(example)
