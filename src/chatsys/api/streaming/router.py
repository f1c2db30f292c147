"""WebSocket streams: one task's events, and the multiplexed ``/v1/ws`` connection.

``/v1/ws`` protocol (JSON text frames; the README has the table):

client -> server
  {"type": "subscribe", "task_id": ..., "after": 0, "id": "ref"}
  {"type": "subscribe", "conversation_id": ..., "id": "ref"}
  {"type": "unsubscribe", "task_id" | "conversation_id": ..., "id": "ref"}
  {"type": "send_message", "conversation_id": ..., "content": "...", "id": "ref", ...options}
  {"type": "ping", "id": "ref"}
server -> client
  {"type": "subscribed" | "unsubscribed", "task_id" | "conversation_id": ..., "id": "ref"}
  {"type": "event", "event": {"task_id", "seq", "type", "data", "ts"}}
  {"type": "message_accepted", "id": "ref", "task_id": ..., "conversation_id": ...}
  {"type": "pong", "id": "ref"}
  {"type": "error", "id": "ref" | null, "code": "...", "message": "..."}

A bad frame gets an error frame; the connection stays open. Strings follow the text rule
of ``chatsys.api.text`` (no NUL, no lone surrogate), as in HTTP bodies; an unexpected
failure is logged and answered with ``code: "internal"``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from uuid import UUID

import orjson
import structlog
from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from chatsys.api.access.deps import PrincipalDep, ReaderDep
from chatsys.api.errors import classify
from chatsys.api.streaming.deps import FollowConversationDep, FollowTaskDep, StreamConfigDep
from chatsys.api.streaming.frames import (
    ErrorFrame,
    MessageAcceptedFrame,
    PongFrame,
    ServerFrame,
    SubscribedFrame,
    UnsubscribedFrame,
)
from chatsys.api.streaming.sse import (
    CLOSE_BAD_REQUEST,
    CLOSE_NORMAL,
    CLOSE_NOT_FOUND,
    Stream,
    StreamConfig,
    close_for,
    close_websocket,
    event_text,
    receive_until_disconnect,
    run_until_stopped,
)
from chatsys.api.tasks.deps import SubmitTaskDep
from chatsys.api.tasks.schemas import SEQ_MAX, TaskOptions
from chatsys.api.text import LineOrNone, Text, printable
from chatsys.domain.access.model import Principal
from chatsys.domain.shared.errors import (
    DomainError,
    NotFound,
)
from chatsys.domain.streaming.follow import FollowConversation, FollowTask, Idle, StreamInterrupted
from chatsys.domain.tasks.submission import SubmitTask

router = APIRouter(tags=["streams"])
log = structlog.stdlib.get_logger("chatsys.api")


def _parse_after(raw: str | None) -> int | None:
    if raw is None:
        return 0
    raw = raw.strip()
    return int(raw) if raw.isdigit() and len(raw) <= 18 else None


@router.websocket("/v1/tasks/{task_id}/stream")
async def task_stream(
    websocket: WebSocket,
    task_id: str,
    follow_task: FollowTaskDep,
    config: StreamConfigDep,
    owner: ReaderDep,
) -> None:
    """One task's events as JSON frames ``{task_id, seq, type, data, ts}`` after
    ``?after=N``; closes with 1000 after the terminal event."""
    await websocket.accept()
    after = _parse_after(websocket.query_params.get("after"))
    if after is None:
        reason = "after must be a whole number >= 0"
        await close_websocket(websocket, CLOSE_BAD_REQUEST, reason, config.close_timeout)
        return
    try:
        task = UUID(task_id)
        await follow_task.check(task, owner=owner)
    except (ValueError, NotFound):
        reason = f"task {task_id} does not exist"
        await close_websocket(websocket, CLOSE_NOT_FOUND, reason, config.close_timeout)
        return

    sent = after

    async def pump(stream: Stream) -> None:
        nonlocal sent
        async for item in stream:
            if not isinstance(item, Idle):
                await websocket.send_text(event_text(item))
                sent = item.seq

    async with follow_task.open(task, after=after) as stream:
        stopped = await run_until_stopped(pump(stream), stream, receive_until_disconnect(websocket))
    code, reason = close_for(stopped, sent) if stopped else (CLOSE_NORMAL, "task finished")
    await close_websocket(websocket, code, reason, config.close_timeout)


# -- /v1/ws ------------------------------------------------------------------------------


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: LineOrNone = Field(default=None, max_length=100, description="echoed in the answer")


class _Target(_Frame):
    task_id: UUID | None = None
    conversation_id: UUID | None = None

    @model_validator(mode="after")
    def _one_target(self) -> _Target:
        if (self.task_id is None) == (self.conversation_id is None):
            raise ValueError("give exactly one of task_id and conversation_id")
        return self


class SubscribeFrame(_Target):
    type: Literal["subscribe"]
    after: int = Field(default=0, ge=0, le=SEQ_MAX, description="tasks only: start after this seq")


class UnsubscribeFrame(_Target):
    type: Literal["unsubscribe"]


class SendMessageFrame(TaskOptions):
    type: Literal["send_message"]
    id: LineOrNone = Field(default=None, max_length=100)
    conversation_id: UUID
    content: Text


class PingFrame(_Frame):
    type: Literal["ping"]


ClientFrame = Annotated[
    SubscribeFrame | UnsubscribeFrame | SendMessageFrame | PingFrame,
    Field(discriminator="type"),
]
_CLIENT_FRAME: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)


def _frame_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in _FRAME_TYPES)
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return printable(f"{where or 'frame'}: {first.get('msg', 'invalid')}{more}")


_FRAME_TYPES = {"subscribe", "unsubscribe", "send_message", "ping"}


def _error_code(exc: DomainError) -> str:
    """The ``error`` frame's code: the problem type slug of the one error table."""
    return classify(exc)[1].split(":")[0].replace("-", "_")


@dataclass(frozen=True, slots=True)
class _Uses:
    """What one ``/v1/ws`` connection may do."""

    follow_task: FollowTask
    follow_conversation: FollowConversation
    submit_task: SubmitTask
    config: StreamConfig


class _Connection:
    """One ``/v1/ws`` client: its subscriptions, paced by one outbound queue."""

    def __init__(self, websocket: WebSocket, uses: _Uses, principal: Principal) -> None:
        self.ws = websocket
        self.uses = uses
        self.principal = principal
        self.owner = principal.scope
        self.config = uses.config
        self.outbound: asyncio.Queue[str] = asyncio.Queue(maxsize=64)
        self.subscriptions: dict[tuple[str, UUID], asyncio.Task[None]] = {}
        self.stopped: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    async def send(self, frame: ServerFrame) -> None:
        await self.outbound.put(frame.text())

    async def error(self, ref: str | None, code: str, message: str) -> None:
        await self.send(ErrorFrame(id=ref, code=code, message=message))

    async def run(self) -> None:
        sender = asyncio.create_task(self._sender())
        receiver = asyncio.create_task(self._receiver())
        stopped: asyncio.Future[Any] = self.stopped
        try:
            await asyncio.wait({sender, receiver, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sender, receiver, *self.subscriptions.values()):
                task.cancel()
            await asyncio.gather(
                sender, receiver, *self.subscriptions.values(), return_exceptions=True
            )
        if self.stopped.done():
            code, reason = self.stopped.result()
            await close_websocket(self.ws, code, reason, self.config.close_timeout)

    async def _sender(self) -> None:
        while True:
            await self.ws.send_text(await self.outbound.get())

    async def _receiver(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                raw = (message.get("bytes") or b"").decode("utf-8", "replace")
            await self._handle(raw)

    async def _handle(self, raw: str) -> None:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            await self.error(None, "invalid_json", f"not JSON: {exc}")
            return
        ref = body.get("id") if isinstance(body, dict) else None
        ref = ref if isinstance(ref, str) and len(ref) <= 100 else None
        if not isinstance(body, dict) or body.get("type") not in _FRAME_TYPES:
            kinds = ", ".join(sorted(_FRAME_TYPES))
            await self.error(ref, "invalid_frame", f"type must be one of: {kinds}")
            return
        try:
            frame = _CLIENT_FRAME.validate_python(body)
        except ValidationError as exc:
            await self.error(ref, "invalid_frame", _frame_error(exc))
            return
        try:
            if isinstance(frame, PingFrame):
                await self.send(PongFrame(id=frame.id))
            elif isinstance(frame, SubscribeFrame):
                await self._subscribe(frame)
            elif isinstance(frame, UnsubscribeFrame):
                await self._unsubscribe(frame)
            else:
                await self._send_message(frame)
        except DomainError as exc:
            await self.error(ref, _error_code(exc), exc.detail)
        except Exception:  # a bug, not the client's fault: log it, answer, keep the socket
            request_id = self.ws.scope.get("state", {}).get("request_id")
            log.exception("chatsys.api.ws_frame_failed", frame=frame.type, request_id=request_id)
            await self.error(
                ref, "internal", f"internal error; it is logged with request id {request_id}"
            )

    @staticmethod
    def _key(frame: _Target) -> tuple[str, UUID]:
        if frame.task_id is not None:
            return "task_id", frame.task_id
        assert frame.conversation_id is not None
        return "conversation_id", frame.conversation_id

    async def _subscribe(self, frame: SubscribeFrame) -> None:
        key = self._key(frame)
        if key in self.subscriptions and not self.subscriptions[key].done():
            await self.error(frame.id, "already_subscribed", f"already subscribed to {key[1]}")
            return
        live = sum(not t.done() for t in self.subscriptions.values())
        if live >= self.config.max_subscriptions:
            limit = self.config.max_subscriptions
            await self.error(frame.id, "too_many_subscriptions", f"at most {limit} at a time")
            return
        if frame.task_id is not None:
            await self.uses.follow_task.check(frame.task_id, owner=self.owner)
            opened: contextlib.AbstractAsyncContextManager[Stream] = self.uses.follow_task.open(
                frame.task_id, after=frame.after
            )
        else:
            assert frame.conversation_id is not None
            await self.uses.follow_conversation.check(frame.conversation_id, owner=self.owner)
            opened = self.uses.follow_conversation.open(frame.conversation_id)
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.subscriptions[key] = asyncio.create_task(self._follow(key, frame.id, opened, ready))
        await ready  # "subscribed" is sent once the live subscription is active

    async def _follow(
        self,
        key: tuple[str, UUID],
        ref: str | None,
        opened: contextlib.AbstractAsyncContextManager[Stream],
        ready: asyncio.Future[None],
    ) -> None:
        try:
            async with opened as stream:
                await self.send(SubscribedFrame.model_validate({key[0]: key[1], "id": ref}))
                ready.set_result(None)

                async def pump() -> None:
                    async for item in stream:
                        if not isinstance(item, Idle):
                            await self.outbound.put(
                                '{"type":"event","event":' + event_text(item) + "}"
                            )

                stopped = await run_until_stopped(pump(), stream)
        except BaseException:
            if not ready.done():
                ready.set_result(None)
            raise
        if stopped is not None:
            self._stop(stopped)
            return
        await self.send(UnsubscribedFrame.model_validate({key[0]: key[1], "reason": "finished"}))

    def _stop(self, stopped: StreamInterrupted) -> None:
        if not self.stopped.done():
            self.stopped.set_result(close_for(stopped))

    async def _unsubscribe(self, frame: UnsubscribeFrame) -> None:
        key = self._key(frame)
        task = self.subscriptions.pop(key, None)
        if task is None or task.done():
            raise NotFound(f"not subscribed to {key[1]}")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await self.send(UnsubscribedFrame.model_validate({key[0]: key[1], "id": frame.id}))

    async def _send_message(self, frame: SendMessageFrame) -> None:
        request = frame.to_request(frame.content, frame.conversation_id)
        self.principal.require_writer()
        task, _ = await self.uses.submit_task.execute(
            owner=self.principal.subject,
            request=request,
            actor=self.principal.actor,
            role=self.principal.role,
            default_priority=self.principal.default_priority,
        )
        await self.send(
            MessageAcceptedFrame(
                id=frame.id, task_id=task.id, conversation_id=frame.conversation_id
            )
        )


@router.websocket("/v1/ws")
async def multiplexed(
    websocket: WebSocket,
    principal: PrincipalDep,
    follow_task: FollowTaskDep,
    follow_conversation: FollowConversationDep,
    submit_task: SubmitTaskDep,
    config: StreamConfigDep,
) -> None:
    """One connection for many streams: see the module doc and the README."""
    await websocket.accept()
    uses = _Uses(follow_task, follow_conversation, submit_task, config)
    await _Connection(websocket, uses, principal).run()
