"""The streams in the OpenAPI document.

OpenAPI 3.1 has no WebSocket operations and no schema for the items of an event
stream, so:

- the frames are components like any other: ``TaskEvent`` (the event, a union on
  ``type``, also the items of the JSON page), ``WsClientFrame`` and ``WsServerFrame``
  (the ``/v1/ws`` frames, unions on ``type``; each frame its own component) and
  ``StreamControl`` (an SSE ``overflow`` / ``reconnect`` message);
- the SSE answer of ``GET /v1/tasks/{task_id}/events`` names its messages in an
  ``x-sse-events`` list on its ``text/event-stream`` content (``event``, ``id`` and
  the schema of ``data``);
- the WebSocket routes are described under the top-level ``x-websockets``: path,
  query parameters, the schemas of the frames each way, and the close codes.

Every schema comes from the models the server uses (``api/streaming/frames.py``, the
client frames ``/v1/ws`` parses in ``api/streaming/router.py``, ``api/tasks/events.py``).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import TypeAdapter

from chatsys.api.access.middleware import CLOSE_RATE_LIMITED, CLOSE_UNAUTHORIZED
from chatsys.api.streaming.frames import StreamControl, WsServerFrame
from chatsys.api.streaming.router import ClientFrame
from chatsys.api.streaming.sse import (
    CLOSE_BAD_REQUEST,
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_NOT_FOUND,
    CLOSE_SLOW_CONSUMER,
)
from chatsys.api.tasks.events import TaskEvent
from chatsys.api.tasks.examples import CONVERSATION_ID, TASK_ID, event_example
from chatsys.domain.tasks.model import EventType

__all__ = ["EVENTS_PATH", "SSE_EVENTS", "SSE_EXAMPLE", "document_streams", "schema_ref"]

EVENTS_PATH = "/v1/tasks/{task_id}/events"
_TEMPLATE = "#/components/schemas/{model}"


def schema_ref(name: str) -> dict[str, str]:
    return {"$ref": _TEMPLATE.format(model=name)}


SSE_EVENTS: list[dict[str, Any]] = [
    {
        "event": "<the event's type>",
        "id": "<the event's seq>",
        "data": schema_ref("TaskEvent"),
        "description": "an event of the log, replayed or live",
    },
    {
        "event": "overflow",
        "data": schema_ref("StreamControl"),
        "description": "the client read too slowly; the stream ends",
    },
    {
        "event": "reconnect",
        "data": schema_ref("StreamControl"),
        "description": "the server is going away; the stream ends",
    },
]
"""The messages of the SSE answer (besides `retry:` and `: keep-alive` comments)."""


def _sse(event: dict[str, Any]) -> str:
    data = json.dumps(event, separators=(",", ":"))
    return f"id: {event['seq']}\nevent: {event['type']}\ndata: {data}\n\n"


SSE_EXAMPLE = (
    "retry: 1000\n\n"
    + _sse(event_example(EventType.TASK_CREATED))
    + ": keep-alive\n\n"
    + _sse(event_example(EventType.TASK_STARTED))
)

_CLOSES = {
    CLOSE_NORMAL: "the task finished and every event was sent",
    CLOSE_GOING_AWAY: "the server is going away: reconnect with after= from the reason",
    CLOSE_SLOW_CONSUMER: "the client read too slowly: reconnect with after= from the reason",
    CLOSE_BAD_REQUEST: "bad after= (not a whole number >= 0)",
    CLOSE_UNAUTHORIZED: "no valid API key or ticket",
    CLOSE_NOT_FOUND: "no such task (or not one this key may see)",
    CLOSE_RATE_LIMITED: "too many requests",
}
_AUTH = (
    "Authenticated like every /v1 route (`Authorization: Bearer <key>`), or, where a "
    "browser cannot send headers, with a single-use `?ticket=` from POST /v1/stream-tickets."
)
_TICKET = {
    "name": "ticket",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "a stream ticket (POST /v1/stream-tickets), in place of the header",
}


_CLIENT_EXAMPLES: list[dict[str, Any]] = [
    {"type": "subscribe", "task_id": TASK_ID, "after": 0, "id": "s1"},
    {"type": "subscribe", "conversation_id": CONVERSATION_ID, "id": "s2"},
    {"type": "unsubscribe", "task_id": TASK_ID, "id": "u1"},
    {"type": "send_message", "conversation_id": CONVERSATION_ID,
     "content": "Write a Python function that slugifies a title", "id": "m1"},
    {"type": "ping", "id": "p1"},
]  # fmt: skip
_SERVER_EXAMPLES: list[dict[str, Any]] = [
    {"type": "subscribed", "task_id": TASK_ID, "id": "s1"},
    {"type": "event", "event": event_example(EventType.MESSAGE_DELTA)},
    {"type": "unsubscribed", "task_id": TASK_ID, "reason": "finished"},
    {"type": "unsubscribed", "conversation_id": CONVERSATION_ID, "id": "u2"},
    {"type": "message_accepted", "id": "m1", "task_id": TASK_ID,
     "conversation_id": CONVERSATION_ID},
    {"type": "pong", "id": "p1"},
    {"type": "error", "id": "s1", "code": "not_found",
     "message": f"task {TASK_ID} does not exist"},
]  # fmt: skip


def _websockets() -> dict[str, Any]:
    task_stream_codes = (CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_SLOW_CONSUMER, CLOSE_BAD_REQUEST,
                         CLOSE_UNAUTHORIZED, CLOSE_NOT_FOUND, CLOSE_RATE_LIMITED)  # fmt: skip
    ws_codes = (CLOSE_GOING_AWAY, CLOSE_SLOW_CONSUMER, CLOSE_UNAUTHORIZED, CLOSE_RATE_LIMITED)
    return {
        "/v1/tasks/{task_id}/stream": {
            "summary": "One task's events live, as JSON text frames",
            "description": "Replays the log after `after`, follows live, closes with 1000 "
            "after the terminal event. " + _AUTH,
            "parameters": [
                {
                    "name": "task_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "format": "uuid"},
                },
                {
                    "name": "after",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 0, "default": 0},
                    "description": "start after this seq",
                },
                _TICKET,
            ],
            "serverFrames": schema_ref("TaskEvent"),
            "closeCodes": {str(code): _CLOSES[code] for code in task_stream_codes},
        },
        "/v1/ws": {
            "summary": "One connection for many streams: subscribe, post messages, ping",
            "description": "JSON text frames, each with a `type`; the `id` a client frame "
            "gives comes back in its answer. A bad frame is answered with an `error` frame "
            "and the connection stays open. " + _AUTH,
            "parameters": [_TICKET],
            "clientFrames": schema_ref("WsClientFrame"),
            "serverFrames": schema_ref("WsServerFrame"),
            "closeCodes": {str(code): _CLOSES[code] for code in ws_codes},
        },
    }


def _without_examples(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_examples(v) for k, v in node.items() if k != "examples"}
    if isinstance(node, list):
        return [_without_examples(v) for v in node]
    return node


def _merge(schemas: dict[str, Any], found: dict[str, Any]) -> None:
    """Add ``found`` to the components. One already there (a route's model) must be the
    same schema (else two models share a name); ours replaces it for its examples:
    FastAPI writes the document without null values, even inside examples, which
    would leave an example without a field its schema requires."""
    for name, schema in found.items():
        given = schemas.get(name)
        if given is not None and _without_examples(given) != _without_examples(schema):
            raise RuntimeError(f"the OpenAPI component {name} would have two schemas")
        schemas[name] = schema


def _union(
    schemas: dict[str, Any], name: str, union: Any, mode: Literal["validation", "serialization"]
) -> None:
    schema = TypeAdapter(union).json_schema(mode=mode, ref_template=_TEMPLATE)
    _merge(schemas, schema.pop("$defs", {}))
    _merge(schemas, {name: schema})


def _referenced(spec: dict[str, Any], name: str) -> bool:
    ref = _TEMPLATE.format(model=name)
    pending: list[Any] = [spec]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if node.get("$ref") == ref:
                return True
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return False


def document_streams(spec: dict[str, Any]) -> None:
    """Put the frames into ``spec``'s components, the SSE messages on the events route,
    and the WebSocket routes under ``x-websockets``."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    _union(schemas, "TaskEvent", TaskEvent, "serialization")
    _union(schemas, "WsServerFrame", WsServerFrame, "serialization")
    schemas["WsServerFrame"]["description"] = "A frame the server sends on /v1/ws."
    schemas["WsServerFrame"]["examples"] = _SERVER_EXAMPLES
    _union(schemas, "WsClientFrame", ClientFrame, "validation")
    schemas["WsClientFrame"]["description"] = "A frame a client sends on /v1/ws."
    schemas["WsClientFrame"]["examples"] = _CLIENT_EXAMPLES
    _union(schemas, "StreamControl", StreamControl, "serialization")
    if "EventOut" in schemas and not _referenced(spec, "EventOut"):
        del schemas["EventOut"]  # the page documents its items as TaskEvent
    spec["x-websockets"] = _websockets()
