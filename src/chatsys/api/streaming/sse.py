"""Event streams over SSE and WebSocket: framing, pacing and close codes.

Every stream is paced by its client (an event is sent when the previous one was
taken by the transport). Meanwhile live events wait in the subscriber's bounded
buffer; when it overflows the stream is stopped at once, even mid-send, with
close code 4008 (SSE: an ``overflow`` event) naming the ``after`` to resume from.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

import orjson
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from chatsys.api.streaming.frames import StreamControl
from chatsys.domain.streaming.follow import GoingAway, Idle, StreamInterrupted
from chatsys.domain.tasks.model import TaskEvent

# WebSocket close codes (documented in the README).
CLOSE_NORMAL = 1000  # the task finished; every event was sent
CLOSE_GOING_AWAY = 1001  # this API process is shutting down: reconnect with after=
CLOSE_SLOW_CONSUMER = 4008  # the client read too slowly: reconnect with after=
CLOSE_BAD_REQUEST = 4400  # e.g. a negative or non-numeric after
CLOSE_NOT_FOUND = 4404  # no such task (or not yours)


@dataclass(frozen=True, slots=True)
class StreamConfig:
    keepalive: float
    close_timeout: float
    max_subscriptions: int


def event_frame(event: TaskEvent) -> dict[str, Any]:
    return {
        "task_id": event.task_id,
        "seq": event.seq,
        "type": event.type,
        "data": event.data,
        "ts": event.created_at,
    }


def _fallback(value: Any) -> str:
    return str(value)  # UUID subclasses from the driver, which orjson does not take as UUIDs


def dumps(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame, default=_fallback).decode()


# One encoding per event, however many subscribers it goes to: a task's (id, seq)
# names one immutable event for good. Bounded: the oldest entries go first.
_ENCODED: dict[tuple[UUID, int], str] = {}
_ENCODED_MAX = 8192


def event_text(event: TaskEvent) -> str:
    """The event's JSON frame ``{task_id, seq, type, data, ts}``, encoded once."""
    key = (event.task_id, event.seq)
    text = _ENCODED.get(key)
    if text is None:
        text = dumps(event_frame(event))
        if len(_ENCODED) >= _ENCODED_MAX:
            del _ENCODED[next(iter(_ENCODED))]
        _ENCODED[key] = text
    return text


def sse_event(event: TaskEvent) -> bytes:
    data = event_text(event).encode()
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.seq, event.type.encode(), data)


def sse_message(kind: str, body: StreamControl) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (kind.encode(), body.model_dump_json().encode())


SSE_KEEPALIVE = b": keep-alive\n\n"


class Stream(Protocol):
    """What the pumps below need of a domain stream."""

    def __aiter__(self) -> AsyncIterator[TaskEvent | Idle]: ...

    async def interrupted(self) -> StreamInterrupted: ...


async def run_until_stopped(
    pump: Awaitable[None], stream: Stream, also: Awaitable[Any] | None = None
) -> StreamInterrupted | None:
    """Run ``pump`` until it ends, ``stream`` is interrupted, or ``also`` completes
    (e.g. the client went away). Return the interruption, if that came first."""
    tasks: dict[asyncio.Task[Any], str] = {
        asyncio.ensure_future(pump): "pump",
        asyncio.ensure_future(stream.interrupted()): "interrupted",
    }
    if also is not None:
        tasks[asyncio.ensure_future(also)] = "also"
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if tasks[task] == "interrupted" and not task.cancelled():
            result: StreamInterrupted = task.result()
            return result
        if tasks[task] == "pump" and not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if isinstance(exc, StreamInterrupted):
                return exc
            if isinstance(exc, WebSocketDisconnect):
                return None  # the client hung up while we were sending
            assert exc is not None
            raise exc
    return None


class EventStreamResponse(Response):
    """``text/event-stream`` of one task, ending after its terminal event."""

    media_type = "text/event-stream"

    def __init__(
        self,
        opened: contextlib.AbstractAsyncContextManager[Stream],
        config: StreamConfig,
        *,
        after: int,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=200)
        self._opened = opened
        self._after = after
        self._config = config
        self._extra_headers = headers or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            "x-accel-buffering": "no",  # nginx: do not buffer the stream
            **self._extra_headers,
        }

        async def body(chunk: bytes) -> None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

        sent = self._after

        async def pump(stream: Stream) -> None:
            nonlocal sent
            await body(b"retry: 1000\n\n")
            async for item in stream:
                if isinstance(item, Idle):
                    await body(SSE_KEEPALIVE)
                else:
                    await body(sse_event(item))
                    sent = item.seq

        async def client_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        # Subscribed before the first byte: a stream that cannot subscribe (Redis away)
        # still gets a problem answer (503) instead of a 200 that ends at once.
        async with self._opened as stream:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
                }
            )
            stopped = await run_until_stopped(pump(stream), stream, client_gone())
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(self._config.close_timeout):
                if stopped is not None:
                    kind = "reconnect" if isinstance(stopped, GoingAway) else "overflow"
                    await body(sse_message(kind, StreamControl(reason=stopped.reason, after=sent)))
                await send({"type": "http.response.body", "body": b"", "more_body": False})


async def close_websocket(websocket: WebSocket, code: int, reason: str, grace: float) -> None:
    """Close, giving a stalled client ``grace`` seconds to make room for the frame."""
    if websocket.application_state is WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(TimeoutError, RuntimeError, OSError, WebSocketDisconnect):
        async with asyncio.timeout(grace):
            await websocket.close(code, reason[:120])


async def receive_until_disconnect(websocket: WebSocket) -> None:
    """For a one-way stream: drain (and ignore) client frames until it disconnects."""
    while True:
        message: Message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


def close_for(stopped: StreamInterrupted, sent: int | None = None) -> tuple[int, str]:
    """The close code and reason; with ``sent`` (the last seq the client was sent) the
    reason says where to resume: "...; resume with after=N"."""
    code = CLOSE_GOING_AWAY if isinstance(stopped, GoingAway) else CLOSE_SLOW_CONSUMER
    if sent is None:
        return code, stopped.reason
    return code, f"{stopped.reason}; resume with after={sent}"
