"""Request context: a request id on every response and log line, and a last line of
defence that turns any unhandled exception into a 500 problem+json with no internals."""

from __future__ import annotations

import re
import time
import uuid

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatsys.api.errors import PROBLEM_MEDIA_TYPE, problem_body

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

log = structlog.stdlib.get_logger("chatsys.api")


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            candidate = value.decode("latin-1")
            return candidate if _VALID_REQUEST_ID.match(candidate) else None
    return None


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                # WebSocket frames skip the wrapper (it only adds to HTTP answers).
                await self.app(scope, receive, send_with_id if scope["type"] == "http" else send)
            except Exception:
                log.exception(
                    "chatsys.api.unhandled_error",
                    method=scope.get("method"),
                    path=scope.get("path"),
                )
                if scope["type"] == "http" and status == 0:
                    status = 500
                    await self._send_500(scope, send_with_id, request_id)
            finally:
                if scope["type"] == "http":
                    log.info(
                        "chatsys.api.request",
                        method=scope.get("method"),
                        path=scope.get("path"),
                        status=status,
                        duration_ms=round((time.perf_counter() - started) * 1000, 2),
                    )

    @staticmethod
    async def _send_500(scope: Scope, send: Send, request_id: str) -> None:
        body = orjson.dumps(
            problem_body(
                500,
                "the server hit an unexpected error; it has been logged with this request id",
                instance=scope.get("path"),
                request_id=request_id,
            )
        )
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
