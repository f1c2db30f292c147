"""The API's HTTP server: uvicorn, with limits on what one connection may hold.

uvicorn (with httptools) waits forever for a request's head and body, and takes a head
of any size: a client sending a byte every few seconds (slowloris) or megabytes of
headers holds a connection and memory for as long as it likes. So the protocol here
(uvicorn's own, subclassed) gives each connection:

- ``header_timeout``: from the connection's first moment (or a request's first byte on
  a kept-alive connection) to the end of the request's head; past it the connection is
  closed (a client that never sends a byte too);
- ``body_timeout``: from the end of the head to the end of the body; past it a 408
  answers (when nothing has been answered yet) and the connection is closed;
- ``max_header_bytes`` and ``max_headers``: a bigger head is answered 431 and closed.

Nothing limits a request once its body is in: a response streams (SSE) as long as it
likes, and a WebSocket is no longer this protocol's after its upgrade. uvicorn's own
options do the rest: ``timeout_keep_alive`` (an idle kept-alive connection),
``limit_concurrency`` (connections + requests per process, then 503s), and the
forwarded headers, believed only from ``trusted_proxies`` (none by default, so
``X-Forwarded-For`` from anyone else changes nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from chatsys.infra.logging import get_logger
from chatsys.infra.settings import ApiSettings

log = get_logger("chatsys.api.server")


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout: float = 5.0
    body_timeout: float = 8.0
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100


class ApiServerConfig(uvicorn.Config):
    """uvicorn's config, carrying the limits to every connection's protocol (and, being
    a module-level class, to worker processes when ``workers`` > 1)."""

    def __init__(self, app: Any, *, limits: ConnectionLimits, **options: Any) -> None:
        super().__init__(app, **options)
        self.limits = limits


def server_config(app: Any, api: ApiSettings, **options: Any) -> ApiServerConfig:
    """The server for ``app`` with the API settings' limits; ``options`` go to uvicorn."""
    trusted = list(api.trusted_proxies)
    return ApiServerConfig(
        app,
        limits=ConnectionLimits(
            header_timeout=api.header_timeout,
            body_timeout=api.body_timeout,
            max_header_bytes=api.max_header_bytes,
            max_headers=api.max_headers,
        ),
        http=f"{__name__}:LimitedHttpProtocol",
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or [],  # never uvicorn's default (loopback)
        limit_concurrency=api.max_connections or None,
        timeout_keep_alive=api.keepalive_timeout,
        h11_max_incomplete_event_size=api.max_header_bytes,
        **options,
    )


def serve(config: ApiServerConfig) -> int:
    """Run the server (as ``uvicorn.run`` does, without reloading): in this process, or
    in ``config.workers`` processes sharing one socket. 3 when it did not start."""
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        if config.workers > 1:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
            return 0
        server.run()
    return 0 if server.started else 3


def _answer(status: int, reason: str, detail: str) -> bytes:
    body = orjson.dumps(
        {"type": "about:blank", "title": reason, "status": status, "detail": detail}
    )
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on each request's head and body and a
    cap on the head's size and header count (see the module's docstring)."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._limits: ConnectionLimits = getattr(config, "limits", ConnectionLimits())
        self._deadline: asyncio.TimerHandle | None = None
        self._in_head = True  # waiting for (the rest of) a request's head
        self._head_bytes = 0  # received while in the head: bounds a head still coming
        self._head_size = 0  # the parsed head's size
        self._header_count = 0
        self._refused = False

    # -- timers

    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.debug("chatsys.api.connection_timeout", phase="head", client=self._peer())
            self.transport.close()

    def _body_too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        log.info("chatsys.api.connection_timeout", phase="body", client=self._peer())
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            detail = f"the request body did not arrive within {self._limits.body_timeout:g} s"
            self.transport.write(_answer(408, "Request Timeout", detail))
        if cycle is not None:
            cycle.disconnected = True  # the app's receive() answers http.disconnect
            cycle.message_event.set()
        self.transport.close()

    def _peer(self) -> str | None:
        return self.client[0] if self.client else None

    def _refuse_head(self, detail: str) -> None:
        self._refused = True
        self._disarm()
        log.info("chatsys.api.head_too_large", client=self._peer(), detail=detail)
        self.transport.write(_answer(431, "Request Header Fields Too Large", detail))
        self.transport.close()

    # -- uvicorn's protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self._limits.header_timeout, self._head_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and not self._refused and self._head_bytes > self._limits.max_header_bytes:
            self._refuse_head(f"the request head is over {self._limits.max_header_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._header_count, self._head_size = True, 0, 0
        if self._deadline is None:  # the first byte of a kept-alive connection's next request
            self._arm(self._limits.header_timeout, self._head_too_slow)

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._head_size += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes = False, 0
        self._disarm()
        if self._head_size > self._limits.max_header_bytes:
            self._refuse_head(f"the request head is over {self._limits.max_header_bytes} bytes")
            return
        if self._header_count > self._limits.max_headers:
            self._refuse_head(f"the request has over {self._limits.max_headers} headers")
            return
        previous = self.cycle
        super().on_headers_complete()
        started = self.cycle is not previous  # not an upgrade to WebSocket
        if started and _has_body(self.headers):
            self._arm(self._limits.body_timeout, self._body_too_slow)

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._disarm()
        self._in_head = True
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        if not self._refused:  # a refused head is not upgraded: its scope was never made
            super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        if not self._refused:
            super().send_400_response(msg)


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return True
    return False
