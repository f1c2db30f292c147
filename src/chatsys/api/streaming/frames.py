"""What the streams send besides events: ``/v1/ws`` server frames, SSE control messages.

The server builds each frame with these models (``frame.text()``), so they are the one
description of what it sends; the OpenAPI document takes their schemas
(``api/streaming/document.py``). The exception is the ``event`` frame: it wraps the
event's JSON, encoded once per event however many subscribers it goes to
(``sse.event_text``), and ``EventFrame`` describes it.

A frame field given at construction is sent, ``None`` as ``null``; one not given is
left out (``subscribed`` names the ``task_id`` or the ``conversation_id``, never both),
which is what ``required`` says in the document.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from chatsys.api.responses import DocumentedAs, Omitted
from chatsys.api.tasks.events import TaskEvent

ErrorCode = Literal[
    "invalid_json",
    "invalid_frame",
    "already_subscribed",
    "too_many_subscriptions",
    "not_found",
    "conflict",
    "invalid_input",
    "unavailable",
    "forbidden",
    "too_many_requests",
    "provider_error",
    "internal_error",
    "internal",
]
"""Every ``code`` of an ``error`` frame: the frame's own, then the problem type slugs of
the domain error table (``api/errors.py``, ``_`` for ``-``); ``internal``: a failure of
the server's own, logged with the request id the message gives."""

Ref = Annotated[str | None, Field(description="the `id` of the client frame it answers")]


def _type_required(schema: dict[str, Any]) -> None:
    schema["required"] = ["type", *schema.get("required", [])]


class ServerFrame(BaseModel):
    model_config = ConfigDict(json_schema_extra=_type_required)

    def text(self) -> str:
        """The frame as sent: the fields given at construction (``type`` always)."""
        return self.model_dump_json(exclude_unset=True)

    def model_post_init(self, context: object, /) -> None:
        self.model_fields_set.add("type")


class SubscribedFrame(ServerFrame):
    """The subscription is live: events follow (a task's from its `after`). It names the
    `task_id` or the `conversation_id` subscribed to, never both."""

    type: Literal["subscribed"] = "subscribed"
    task_id: Omitted[UUID]
    conversation_id: Omitted[UUID]
    id: Ref


class EventFrame(ServerFrame):
    """One event of a subscribed task (a conversation's: of each of its tasks)."""

    type: Literal["event"] = "event"
    event: TaskEvent


class UnsubscribedFrame(ServerFrame):
    """The answer to `unsubscribe` (with its `id`), or a task's subscription ending after
    its terminal event (`reason: finished`, no `id`). It names the `task_id` or the
    `conversation_id`, never both."""

    type: Literal["unsubscribed"] = "unsubscribed"
    task_id: Omitted[UUID]
    conversation_id: Omitted[UUID]
    id: Annotated[Ref, Field(default=None)]
    reason: Omitted[Literal["finished"]]


class MessageAcceptedFrame(ServerFrame):
    """`send_message` started a task (as `POST /v1/conversations/{id}/messages` does)."""

    type: Literal["message_accepted"] = "message_accepted"
    id: Ref
    task_id: UUID
    conversation_id: UUID


class PongFrame(ServerFrame):
    type: Literal["pong"] = "pong"
    id: Ref


class ErrorFrame(ServerFrame):
    """A frame was refused or failed; the connection stays open."""

    type: Literal["error"] = "error"
    id: Ref
    code: Annotated[str, DocumentedAs(ErrorCode)]
    message: str = Field(description="for a person; an `invalid_frame` names the field")


WsServerFrame = Annotated[
    SubscribedFrame
    | EventFrame
    | UnsubscribedFrame
    | MessageAcceptedFrame
    | PongFrame
    | ErrorFrame,
    Field(discriminator="type"),
]


class StreamControl(BaseModel):
    """The `data` of an SSE `overflow` (the client read too slowly) or `reconnect` (the
    server is going away) message: the stream ends; resume from `after`."""

    reason: str = Field(examples=["slow consumer", "server going away"])
    after: int = Field(ge=0, description="the last seq sent: reconnect with `after` (or "
                       "`Last-Event-ID`) set to it")  # fmt: skip
