"""A real HTTP receiver for webhooks on 127.0.0.1 (tests and bench), and a canary listener.

The receiver is a small HTTP/1.1 server on asyncio streams: it reads one request per
connection (``Content-Length`` bodies, as the sender sends), records it, and answers
with the next status of its script (then ``default``). With ``hang`` it reads and
records each request and never answers (until it is stopped): a receiver that accepts
and stalls. With ``keep_alive`` it answers any number of requests per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when the body was read
    status: int  # what the receiver answered


@dataclass
class Receiver:
    statuses: list[int] = field(default_factory=list)
    default: int = 200
    port: int = 0
    hang: bool = False
    keep_alive: bool = False  # answer many requests per connection
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    _server: asyncio.Server | None = None
    _arrived: asyncio.Condition | None = None
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Receiver:
        self._arrived = asyncio.Condition()
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def __aenter__(self) -> Receiver:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await self._answer_one(reader, writer) and self.keep_alive:
                pass
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        status = self.statuses.pop(0) if self.statuses else self.default
        self.received.append(Received(method, path, headers, body, time.time(), status))
        assert self._arrived is not None
        if self.hang:
            async with self._arrived:
                self._arrived.notify_all()
            await self._released.wait()
            return False
        connection = "keep-alive" if self.keep_alive else "close"
        writer.write(
            f"HTTP/1.1 {status} Scripted\r\nContent-Length: 2\r\nConnection: {connection}\r\n\r\nok"
            .encode()
        )  # fmt: skip
        await writer.drain()
        async with self._arrived:
            self._arrived.notify_all()
        return True

    async def wait_for(self, count: int, *, within: float = 20.0) -> list[Received]:
        assert self._arrived is not None
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: len(self.received) >= count)
        return list(self.received)


@dataclass
class Canary:
    """Listens on 127.0.0.1 (and ::1 when the machine has it) and counts connections."""

    port: int = 0
    connections: int = 0
    _servers: list[asyncio.Server] = field(default_factory=list)

    async def start(self) -> Canary:
        first = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = first.sockets[0].getsockname()[1]
        self._servers.append(first)
        if socket.has_ipv6:
            with contextlib.suppress(OSError):
                self._servers.append(await asyncio.start_server(self._handle, "::1", self.port))
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()
