"""Who may call, how often, how much: authentication, rate limits, body size, and the
security headers of every response. Pure ASGI, so WebSocket connections go through
the same gate as HTTP requests.

Everything under ``/v1`` needs a key except nothing: the public routes are the
probes and the API documentation (``PUBLIC``). A route cannot forget
authentication because it is not the route's to remember.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatsys.api.errors import PROBLEM_MEDIA_TYPE, problem_body
from chatsys.domain.access.model import Principal, Role
from chatsys.domain.access.ports import RateDecision, RateLimiter, TicketStore

PUBLIC = frozenset({"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/openapi.json"})
UNLIMITED = frozenset({"/healthz", "/readyz"})  # probes: polled by orchestrators
LOCAL_ADMIN = Principal("local", Role.ADMIN)

UNAUTHORIZED_DETAIL = (
    "a valid API key is required: send 'Authorization: Bearer csk_...' "
    "(streams also take ?ticket= from POST /v1/stream-tickets)"
)
# One detail for every failed authentication (no key, malformed, unknown, revoked): the
# answer tells nothing about which it was.
CLOSE_UNAUTHORIZED = 4401
CLOSE_RATE_LIMITED = 4429

API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


@dataclass(frozen=True, slots=True)
class AccessConfig:
    auth_enabled: bool = True
    limits_enabled: bool = True
    period: float = 60.0
    requests: dict[Role, int] = field(
        default_factory=lambda: {Role.ADMIN: 6000, Role.MEMBER: 600, Role.VIEWER: 300}
    )
    anonymous_requests: int = 60
    max_body_bytes: int = 256 * 1024
    hsts: bool = False


@dataclass(frozen=True, slots=True)
class AccessServices:
    config: AccessConfig
    authenticate: Callable[[str], Awaitable[Principal | None]]
    still_active: Callable[[Principal], Awaitable[bool]]
    limiter: RateLimiter
    tickets: TicketStore


def is_guarded(path: str) -> bool:
    """Whether a request to ``path`` needs a key (when authentication is on)."""
    return path == "/v1" or path.startswith("/v1/")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _is_stream(scope: Scope) -> bool:
    path: str = scope["path"]
    return scope["type"] == "websocket" or path.endswith("/events")


def rate_headers(decision: RateDecision, period: float) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"ratelimit-limit", str(decision.limit).encode()),
        (b"ratelimit-remaining", str(decision.remaining).encode()),
        (b"ratelimit-reset", str(math.ceil(decision.reset_after)).encode()),
        (b"ratelimit-policy", f"{decision.limit};w={round(period)}".encode()),
    ]
    if not decision.allowed:
        headers.append((b"retry-after", str(max(1, math.ceil(decision.retry_after))).encode()))
    return headers


class AccessMiddleware:
    """Body cap, authentication, rate limits. ``access`` gives this app's access
    components; it is called per request because they exist only once the app has
    started (the middleware is built before that)."""

    def __init__(self, app: ASGIApp, *, access: Callable[[], AccessServices]) -> None:
        self.app = app
        self._access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        access = self._access()
        config = access.config
        path: str = scope["path"]

        if scope["type"] == "http":
            length = _header(scope, b"content-length")
            if length is not None and length.isdigit() and int(length) > config.max_body_bytes:
                detail = f"the body is over {config.max_body_bytes} bytes"
                await _problem(scope, send, 413, detail, [])
                return
            receive = _capped(receive, config.max_body_bytes)  # bodies without a length

        principal: Principal | None = None
        guarded = is_guarded(path)
        if guarded:
            principal = LOCAL_ADMIN if not config.auth_enabled else await _principal(scope, access)

        extra: list[tuple[bytes, bytes]] = []
        if config.limits_enabled and path not in UNLIMITED:
            if principal is not None and principal.key_id is not None:
                bucket, limit = f"key:{principal.key_id}", config.requests[principal.role]
            else:
                client = scope.get("client") or ("unknown", 0)
                bucket, limit = f"ip:{client[0]}", config.anonymous_requests
                if principal is not None:  # auth off: the local admin's allowance
                    limit = config.requests[principal.role]
            decision = await access.limiter.hit(bucket, limit=limit, period=config.period)
            extra = rate_headers(decision, config.period)
            if not decision.allowed:
                wait = max(1, math.ceil(decision.retry_after))
                detail = (
                    f"too many requests: {limit} per {round(config.period)} s; retry in {wait} s"
                )
                await _refuse(scope, receive, send, (429, detail, CLOSE_RATE_LIMITED), extra)
                return

        if guarded and principal is None:
            extra.append((b"www-authenticate", b'Bearer realm="chatsys"'))
            refusal = (401, UNAUTHORIZED_DETAIL, CLOSE_UNAUTHORIZED)
            await _refuse(scope, receive, send, refusal, extra)
            return

        if principal is not None:  # only /v1 has one: nothing outside it acts as anybody
            scope.setdefault("state", {})["principal"] = principal

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and extra:
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        # WebSocket frames skip the wrapper: nothing to add to them, one hop less each.
        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)


async def _principal(scope: Scope, access: AccessServices) -> Principal | None:
    authorization = _header(scope, b"authorization")
    if authorization is not None:
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            return None
        return await access.authenticate(credential.strip())
    if _is_stream(scope):
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        tickets = query.get("ticket")
        if tickets:
            principal = await access.tickets.redeem(tickets[0])  # spent, whatever follows
            if principal is not None and await access.still_active(principal):
                return principal
    return None


def _capped(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def capped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:  # FastAPI passes HTTPExceptions from body reading through
                raise HTTPException(413, f"the body is over {limit} bytes")
        return message

    return capped


async def _problem(
    scope: Scope, send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]]
) -> None:
    """A problem answer from here, before any route: with ``instance`` (the path, never
    the query string, which may hold a ticket) and the request id, like every other."""
    request_id = scope.get("state", {}).get("request_id")
    body = orjson.dumps(problem_body(status, detail, instance=scope["path"], request_id=request_id))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    refusal: tuple[int, str, int],  # HTTP status, detail, WebSocket close code
    headers: list[tuple[bytes, bytes]],
) -> None:
    status, detail, close_code = refusal
    if scope["type"] == "http":
        await _problem(scope, send, status, detail, headers)
        return
    # WebSocket: accept, then close with a code and reason a browser can read.
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": close_code, "reason": detail[:120]})


class SecurityHeadersMiddleware:
    """Headers for every HTTP answer, errors included (it wraps the 500 handler)."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        docs = path.startswith("/docs")
        fixed = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"content-security-policy", (DOCS_CSP if docs else API_CSP).encode()),
        ]
        if self.hsts:
            fixed.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
        api = path.startswith("/v1")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                if api and not any(k == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = [*headers, *fixed]
            await send(message)

        await self.app(scope, receive, with_headers)
