"""Clients for the live streams, as a user would write them: SSE over httpx, WebSocket
with the `websockets` library, and an in-process uvicorn server to talk to."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support import GiveUp, eventually, free_port

TERMINAL = {"task.succeeded", "task.failed", "task.cancelled"}


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the test runner keeps its signals
        yield


@contextlib.asynccontextmanager
async def serve(app: FastAPI, *, send_buffer: int | None = None) -> AsyncIterator[str]:
    """Serve an app (whose lifespan already ran) over real HTTP on a free port.

    ``send_buffer`` fixes the kernel's send buffer of every connection (Linux copies it
    from the listening socket), so that a client that stops reading pushes back on the
    server after that many bytes, as over a slow network, rather than after megabytes.
    """
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_config=None, ws_max_size=65536
    )
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.bind(("127.0.0.1", port))
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))

    def started() -> bool:
        if task.done():
            task.result()  # its error, at once
            raise GiveUp("the server stopped before it started")
        return server.started

    await eventually(started, within=60, every=0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        sock.close()


@dataclass
class SseRead:
    events: list[dict[str, Any]] = field(default_factory=list)
    control: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # overflow, ...
    comments: int = 0
    status: int = 0


async def read_sse(
    http: httpx.AsyncClient,
    url: str,
    *,
    last_event_id: int | None = None,
    params: dict[str, Any] | None = None,
    stop_after: int | None = None,
    headers: dict[str, str] | None = None,
) -> SseRead:
    """Read an SSE stream to its end (or until ``stop_after`` events: then hang up)."""
    headers = {"Accept": "text/event-stream", **(headers or {})}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    read = SseRead()
    async with http.stream("GET", url, headers=headers, params=params) as response:
        read.status = response.status_code
        if response.status_code != 200:
            await response.aread()
            return read
        assert response.headers["content-type"].startswith("text/event-stream")
        kind, data, ident = "message", "", None
        async for line in response.aiter_lines():
            if line.startswith(":"):
                read.comments += 1
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line.startswith("id: "):
                ident = int(line[4:])
            elif line == "" and data:
                body = json.loads(data)
                if ident is not None:
                    assert body["seq"] == ident
                    assert body["type"] == kind
                    read.events.append(body)
                else:
                    read.control.append((kind, body))
                kind, data, ident = "message", "", None
                if stop_after is not None and len(read.events) >= stop_after:
                    break
    return read


@dataclass
class WsRead:
    events: list[dict[str, Any]] = field(default_factory=list)
    code: int | None = None
    reason: str = ""


async def read_ws(url: str, *, stop_after: int | None = None, **options: Any) -> WsRead:
    """Read a task's WebSocket stream to its close (or hang up after ``stop_after``)."""
    read = WsRead()
    async with connect(url, **options) as ws:
        try:
            async for raw in ws:
                read.events.append(json.loads(raw))
                if stop_after is not None and len(read.events) >= stop_after:
                    return read
        except ConnectionClosed:
            pass
        assert ws.close_code is not None
        read.code, read.reason = ws.close_code, ws.close_reason or ""
    return read


async def next_frame(ws: ClientConnection, kind: str | None = None, within: float = 10) -> Any:
    """The next /v1/ws frame (of ``kind``, skipping others)."""
    async with asyncio.timeout(within):
        while True:
            frame = json.loads(await ws.recv())
            if kind is None or frame["type"] == kind:
                return frame


async def drain_until_closed(
    ws: ClientConnection, into: list[dict[str, Any]], within: float = 10
) -> None:
    """Read frames into ``into`` until the server closes the connection."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            into.append(json.loads(await asyncio.wait_for(ws.recv(), within)))
    assert ws.close_code is not None


def assert_gapless(events: list[dict[str, Any]], *, start: int = 1) -> None:
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(start, start + len(seqs))), seqs


def deltas_by_step(events: list[dict[str, Any]]) -> dict[str, str]:
    text: dict[str, str] = {}
    for e in events:
        if e["type"] == "message.delta":
            key = e["data"]["step"]
            text[key] = text.get(key, "") + e["data"]["text"]
    return text


def small_receive_buffer_socket(host: str, port: int, size: int = 4096) -> socket.socket:
    """A connected socket that takes little data before it pushes back on the sender:
    a client that stops reading stalls the server quickly."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    sock.connect((host, port))
    sock.setblocking(False)
    return sock
