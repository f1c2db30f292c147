"""The fuzz's network: a namespace of its own with nothing but loopback.

Generated data names webhook URLs (``http://8.8.8.8/``, any host name), which the
worker would call when a task ends, and host names the API would resolve. Inside a
fresh network namespace no packet can leave the machine: a connection to anything
but 127.0.0.1 fails at once (no route), and so does DNS.

Servers named by ``CHATSYS_TEST_DATABASE_URL`` / ``CHATSYS_TEST_REDIS_URL`` live in the
machine's namespace; they are reached through a Unix socket (file system paths are
shared across network namespaces): the outer process relays each socket to the
server, the inner one listens on its own loopback and relays to the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import socket
import struct
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support import free_port

INSIDE = "CHATSYS_FUZZ_ISOLATED"  # set in the environment of the process inside

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


class SandboxError(RuntimeError):
    """The isolated network could not be made; the message says why."""


def unshare_command() -> list[str]:
    """The command prefix that runs a program in a new network namespace: as root
    directly, else inside a user namespace of one's own (the same uid, with the
    capabilities to bring loopback up)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise SandboxError(
            "`unshare` (util-linux) is not installed; the fuzz runs only in a network "
            "namespace of its own, so that generated webhook URLs reach nothing"
        )
    if os.geteuid() == 0:
        return [unshare, "--net"]
    return [unshare, "--user", "--map-current-user", "--keep-caps", "--net"]


def bring_loopback_up() -> None:
    """Bring ``lo`` up (a new namespace starts with it down on Linux) and make sure that
    nothing else is there: no other interface means no route off the machine."""
    others = [name for _, name in socket.if_nameindex() if name != "lo"]
    if others:
        raise SandboxError(f"not an isolated network namespace: interfaces {others}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        if not flags & _IFF_UP:
            fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def _join(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    server: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    await asyncio.gather(_pipe(client[0], server[1]), _pipe(server[0], client[1]))


class Relays:
    """Byte relays on an event loop of their own (a background thread)."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fuzz-relays")
        self._servers: list[asyncio.Server] = []

    def __enter__(self) -> Relays:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        async def close() -> None:
            for server in self._servers:
                server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self, starting: Coroutine[Any, Any, asyncio.Server]) -> None:
        self._servers.append(asyncio.run_coroutine_threadsafe(starting, self._loop).result(10))

    def unix_to_tcp(self, path: Path, host: str, port: int) -> None:
        """Listen on the Unix socket ``path``; relay each connection to ``host:port``."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                upstream = await asyncio.open_connection(host, port)
            except OSError:
                writer.close()
                return
            await _join((reader, writer), upstream)

        self._serve(asyncio.start_unix_server(handle, path=str(path)))

    def tcp_to_unix(self, path: Path) -> int:
        """Listen on a free loopback port; relay each connection to the socket ``path``."""
        port = free_port()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                upstream = await asyncio.open_unix_connection(str(path))
            except OSError:
                writer.close()
                return
            await _join((reader, writer), upstream)

        self._serve(asyncio.start_server(handle, "127.0.0.1", port))
        return port


@contextmanager
def relays() -> Iterator[Relays]:
    with Relays() as running:
        yield running
