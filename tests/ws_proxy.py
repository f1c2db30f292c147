"""A TCP proxy on 127.0.0.1 between a WebSocket client and chatsys, as a load balancer or
a slow network would be: it can switch the API it sends new connections to, stop
reading from the API (the client then reads nothing: to the server, a stalled reader),
drop every connection without a close frame, and it records the close code of every
close frame the server sent, so a test knows why a client reconnected.

Its sockets towards the API take little data before they push back (``SO_RCVBUF``), so a
pause stalls the server's sends quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field

_CLOSE = 0x8


@dataclass
class _Frames:
    """Reads server-to-client bytes: the HTTP answer, then WebSocket frames."""

    buffer: bytearray = field(default_factory=bytearray)
    upgraded: bool = False
    close_code: int | None = None

    def feed(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            del self.buffer[: end + 4]
            self.upgraded = True
        while (frame := self._next()) is not None:
            opcode, payload = frame
            if opcode == _CLOSE and len(payload) >= 2:
                self.close_code = struct.unpack("!H", payload[:2])[0]

    def _next(self) -> tuple[int, bytes] | None:
        data = self.buffer
        if len(data) < 2:
            return None
        opcode, size, at = data[0] & 0x0F, data[1] & 0x7F, 2
        if size == 126:
            if len(data) < 4:
                return None
            size, at = struct.unpack("!H", data[2:4])[0], 4
        elif size == 127:
            if len(data) < 10:
                return None
            size, at = struct.unpack("!Q", data[2:10])[0], 10
        at += 4 if data[1] & 0x80 else 0  # a mask (servers send none)
        if len(data) < at + size:
            return None
        payload = bytes(data[at : at + size])
        del data[: at + size]
        return opcode, payload


@dataclass
class WsProxy:
    target: int  # the API's port; new connections go there
    port: int = 0
    close_codes: list[int | None] = field(default_factory=list)  # one per ended connection
    _reading: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None
    _open: set[asyncio.StreamWriter] = field(default_factory=set)

    async def __aenter__(self) -> WsProxy:
        self._reading.set()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.drop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    def pause(self) -> None:
        """Stop reading from the API (data already read still reaches the client)."""
        self._reading.clear()

    def resume(self) -> None:
        self._reading.set()

    def drop(self) -> None:
        """End every connection at once, with no close frame (a reset)."""
        for writer in list(self._open):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        upstream = socket.socket()
        upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        upstream.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(upstream, ("127.0.0.1", self.target))
        except OSError:
            upstream.close()
            client_w.close()
            return
        # A small limit: little is read ahead while paused.
        api_r, api_w = await asyncio.open_connection(sock=upstream, limit=1024)
        self._open |= {client_w, api_w}
        frames = _Frames()
        up = asyncio.create_task(self._pipe(client_r, api_w, None))
        down = asyncio.create_task(self._pipe(api_r, client_w, frames))
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (up, down):
                task.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
            for writer in (client_w, api_w):
                self._open.discard(writer)
                writer.close()
            self.close_codes.append(frames.close_code)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, frames: _Frames | None
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                if frames is not None:
                    await self._reading.wait()
                data = await reader.read(1024 if frames is not None else 65536)
                if not data:
                    break
                if frames is not None:
                    frames.feed(data)
                writer.write(data)
                await writer.drain()
        if frames is not None:  # the API closed its side: let the client see the end
            with contextlib.suppress(ConnectionError, OSError):
                writer.write_eof()
                await writer.drain()
