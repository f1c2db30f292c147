"""Slow and huge requests against the API's real server (uvicorn as ``chatsys api``
configures it, in process, over real TCP sockets), with the default limits: a
slowloris head or body is closed within 10 s, a connection that says nothing and an
idle kept-alive one are closed, a 1 MiB header and 5,000 headers are refused, the
connections over the cap get 503; and long-lived streams (SSE, WebSocket) that outlive
every one of those timeouts are not cut."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import connect

from chatsys.infra.http_server import server_config
from chatsys.infra.settings import ApiSettings, Settings, StreamSettings
from tests.streams import next_frame, read_sse
from tests.support import GiveUp, eventually, free_port

DEADLINE = 10.0  # the acceptance: a slowloris connection is closed within this
CLOSE = b"Connection: close\r\n\r\n"
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + CLOSE
UPGRADE = (
    b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the test runner keeps its signals
        yield


@contextlib.asynccontextmanager
async def running(app: FastAPI, api: ApiSettings) -> AsyncIterator[tuple[str, int]]:
    port = free_port()
    config = server_config(app, api, host="127.0.0.1", port=port, lifespan="off", log_config=None)
    server = _Server(config)
    task = asyncio.create_task(server.serve())

    def started() -> bool:
        if task.done():
            task.result()
            raise GiveUp("the server stopped before it started")
        return server.started

    await eventually(started, within=60, every=0.01)
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.stream = StreamSettings(keepalive=1.0)
    return settings


@pytest.fixture
async def where(app: FastAPI, settings: Settings) -> AsyncIterator[tuple[str, int]]:
    async with running(app, settings.api) as address:
        yield address


async def _trickle(address: tuple[str, int], head: bytes, body: bytes = b"") -> dict[str, Any]:
    """Send ``head`` (all at once when a body follows, else a byte every 2 s), then the
    body a byte every 2 s, until the server hangs up; what it answered and when."""
    reader, writer = await asyncio.open_connection(*address)
    started = time.monotonic()

    async def send() -> None:
        with contextlib.suppress(ConnectionError):
            if body:
                writer.write(head)
                await writer.drain()
            for byte in (body or head).decode("latin-1"):
                writer.write(byte.encode("latin-1"))
                await writer.drain()
                await asyncio.sleep(2)

    sender = asyncio.create_task(send())
    try:
        answer = await asyncio.wait_for(reader.read(), DEADLINE + 20)  # to the server's EOF
    except ConnectionError:
        answer = b""
    closed_after = time.monotonic() - started
    sender.cancel()
    writer.close()
    return {"closed_after": closed_after, "answer": answer}


async def test_slowloris_heads_bodies_and_silent_connections_are_closed_within_10_s(
    where: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Padding: " + b"a" * 40 + b"\r\n\r\n"
    post = b"POST /v1/tasks HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    post += b"Content-Length: 200\r\n\r\n"
    body = b'{"input": "' + b"x" * 180 + b'"}'
    clients = [
        *(_trickle(where, head) for _ in range(10)),
        *(_trickle(where, post, body) for _ in range(10)),
        *(_trickle(where, b"") for _ in range(5)),  # connects, says nothing
    ]
    results = await asyncio.gather(*clients)
    times = sorted(round(r["closed_after"], 1) for r in results)
    print(f"slow connections closed after (s): {times}")
    assert max(times) < DEADLINE
    heads, bodies, silent = results[:10], results[10:20], results[20:]
    assert all(r["answer"] == b"" for r in heads + silent)  # just closed
    for r in bodies:
        assert r["answer"].startswith(b"HTTP/1.1 408 ")
        assert b"did not arrive within 8 s" in r["answer"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def _ask(address: tuple[str, int], request: bytes) -> bytes:
    """Send a request whole; what came back before the server closed (or b"")."""
    with socket.create_connection(address, timeout=10) as sock:
        with contextlib.suppress(ConnectionError):
            sock.sendall(request)
        chunks = []
        with contextlib.suppress(ConnectionError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize(
    ("what", "headers"),
    [
        ("a 1 MiB header", b"X-Big: " + b"a" * (1024 * 1024) + b"\r\n"),
        ("5,000 headers", b"".join(b"X-H%d: v\r\n" % i for i in range(5000))),
        ("101 headers (over the count, under the size)", b"X-H: v\r\n" * 101),
        ("a WebSocket upgrade with 101 headers", UPGRADE + b"X-H: v\r\n" * 101),
    ],
)
async def test_huge_heads_are_refused_431(
    where: tuple[str, int], what: str, headers: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n"
    answer = await asyncio.to_thread(_ask, where, request)
    assert answer.startswith(b"HTTP/1.1 431 "), (what, answer[:200])
    assert b"connection: close" in answer
    under = b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + b"X-H: v\r\n" * 90 + CLOSE
    assert (await asyncio.to_thread(_ask, where, under)).startswith(b"HTTP/1.1 200 ")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_an_idle_kept_alive_connection_is_closed(where: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*where)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    answered = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert answered.startswith(b"HTTP/1.1 200 ")
    started = time.monotonic()
    rest = await asyncio.wait_for(reader.read(), 15)  # the body, then the server's EOF
    idle = time.monotonic() - started
    writer.close()
    assert rest.endswith(b"}") or rest == b""
    assert 4 <= idle < 7, idle  # CHATSYS_API_KEEPALIVE_TIMEOUT=5


async def test_long_lived_streams_outlive_every_timeout(
    where: tuple[str, int], app: FastAPI
) -> None:
    host = f"{where[0]}:{where[1]}"
    async with httpx.AsyncClient(base_url=f"http://{host}", timeout=30) as http:
        made = await http.post("/v1/tasks", json={"input": "Summarise the design"})
        assert made.status_code == 202  # no worker: it stays queued, its stream stays open
        task_id = made.json()["id"]
        sse = asyncio.create_task(read_sse(http, f"/v1/tasks/{task_id}/events"))
        async with connect(f"ws://{host}/v1/ws") as ws:
            await asyncio.sleep(12)  # past the head (5 s), body (8 s) and idle (5 s) limits
            await ws.send('{"type": "ping", "id": "still-there"}')
            pong = await next_frame(ws, "pong")
            assert pong["id"] == "still-there"
            assert not sse.done()
        app.state.going_away()  # end the SSE stream the way a shutdown does
        read = await asyncio.wait_for(sse, 10)
    assert [e["type"] for e in read.events] == ["task.created"]
    assert read.comments >= 8  # a keep-alive a second, for 12 s, on one connection


async def test_connections_over_the_cap_are_answered_503(app: FastAPI, settings: Settings) -> None:
    api = settings.api.model_copy(update={"max_connections": 4})
    async with running(app, api) as address:
        idle = [socket.create_connection(address) for _ in range(4)]
        try:
            answer = await asyncio.to_thread(_ask, address, HEALTH)
            assert answer.startswith(b"HTTP/1.1 503 "), answer[:100]
        finally:
            for sock in idle:
                sock.close()

        async def served() -> bool:
            return (await asyncio.to_thread(_ask, address, HEALTH)).startswith(b"HTTP/1.1 200")

        await eventually(served, within=10, every=0.2)
