"""Request context: a request id on every response and log line, one log line per
request and per WebSocket connection (the client's address and the path, never the
query string: a stream's ``?ticket=`` stays out of the log), and a last line of defence
that turns any unhandled exception into a 500 problem+json with no internals, or, when
the exception says Postgres or Redis cannot be reached, a 503 with ``Retry-After`` (type
``urn:chatsys:problem:dependency-unavailable``), logged once per outage by the process'
outage reporter instead of a traceback per request."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatsys.api.errors import PROBLEM_MEDIA_TYPE, problem_body
from chatsys.api.wiring import Provider

REQUEST_ID_HEADER = "x-request-id"
# Probes come every few seconds from an orchestrator (and from ``chatsys dev`` while it
# starts): their lines are debug, so an info log shows requests people made.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

log = structlog.stdlib.get_logger("chatsys.api")

UNAVAILABLE_SLUG = "dependency-unavailable"
WS_TRY_AGAIN_LATER = 1013


class OutageReporter(Protocol):
    """The process' record of its dependencies' outages (built by the composition root)."""

    retry_after: int  # seconds a client is told to wait

    def report(self, exc: BaseException) -> str | None:
        """The dependency (``database``, ``redis``) that ``exc`` says is out of reach,
        recorded (logged once per outage); None when ``exc`` is no outage."""
        ...


# Filled by the composition root; without it an outage answers 500 like any error.
outage_reporter = Provider[OutageReporter]("outage_reporter")


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            candidate = value.decode("latin-1")
            return candidate if _VALID_REQUEST_ID.match(candidate) else None
    return None


def _client(scope: Scope) -> str | None:
    """The client's address: the peer's, or the one a trusted proxy forwarded
    (``CHATSYS_API_TRUSTED_PROXIES``; the server has put it in the scope)."""
    client = scope.get("client")
    return client[0] if client else None


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, *, outages: Callable[[], OutageReporter] | None = None
    ) -> None:
        self.app = app
        self._outages = outages

    def _outage(self, exc: BaseException) -> tuple[str, int] | None:
        """(dependency, Retry-After) when ``exc`` is an outage, which is then recorded."""
        if self._outages is None:
            return None
        try:
            reporter = self._outages()
        except RuntimeError:  # the app has not started, or has stopped
            return None
        dependency = reporter.report(exc)
        return None if dependency is None else (dependency, reporter.retry_after)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send, request_id)
            return
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
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                outage = self._outage(exc)
                if outage is not None:
                    if status == 0:
                        status = 503
                        await self._send_503(scope, send_with_id, request_id, *outage)
                else:
                    log.exception(
                        "chatsys.api.unhandled_error",
                        method=scope.get("method"),
                        path=scope.get("path"),
                    )
                    if status == 0:
                        status = 500
                        await self._send_500(scope, send_with_id, request_id)
            finally:
                line = log.debug if scope.get("path") in PROBE_PATHS else log.info
                line(
                    "chatsys.api.request",
                    method=scope.get("method"),
                    path=scope.get("path"),
                    client=_client(scope),
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        """One line when the connection ends: its path, how it closed, how long it was
        open. The close code is the server's (``4401``, ``1000`` "task finished", ...)
        or the client's; ``403`` when it was refused before the handshake."""
        started = time.perf_counter()
        accepted = False
        close_code: int | None = None

        async def receive_noting_close() -> Message:
            nonlocal close_code
            message = await receive()
            if message["type"] == "websocket.disconnect" and close_code is None:
                close_code = message.get("code", 1005)
            return message

        def send_noting_close(message: Message) -> Awaitable[None]:
            # Not a coroutine: a frame (nearly every message) costs a call and one
            # comparison, and the server's own send is what the app awaits.
            nonlocal accepted, close_code
            kind = message["type"]
            if kind != "websocket.send":
                if kind == "websocket.accept":
                    accepted = True
                elif close_code is None and kind == "websocket.close":
                    close_code = message.get("code", 1000) if accepted else 403
                elif close_code is None and kind == "websocket.http.response.start":
                    close_code = message["status"]
            return send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive_noting_close, send_noting_close)
            except Exception as exc:
                if self._outage(exc) is not None:
                    close_code = close_code or WS_TRY_AGAIN_LATER
                else:
                    log.exception("chatsys.api.unhandled_error", path=scope.get("path"))
                    close_code = close_code or 1011
            finally:
                log.info(
                    "chatsys.api.websocket",
                    path=scope.get("path"),
                    client=_client(scope),
                    close_code=close_code,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )

    @staticmethod
    async def _send_500(scope: Scope, send: Send, request_id: str) -> None:
        body = problem_body(
            500,
            "the server hit an unexpected error; it has been logged with this request id",
            instance=scope.get("path"),
            request_id=request_id,
        )
        await _send_problem(send, body, [])

    @staticmethod
    async def _send_503(
        scope: Scope, send: Send, request_id: str, dependency: str, retry_after: int
    ) -> None:
        body = problem_body(
            503,
            f"the {dependency} cannot be reached right now; retry in {retry_after} s",
            instance=scope.get("path"),
            request_id=request_id,
            slug=UNAVAILABLE_SLUG,
        )
        await _send_problem(send, body, [(b"retry-after", str(retry_after).encode())])


async def _send_problem(
    send: Send, body: dict[str, object], headers: list[tuple[bytes, bytes]]
) -> None:
    raw = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": body["status"],
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(raw)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})
