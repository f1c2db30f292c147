"""`chatsys dev`: the whole service in one foreground command.

Starts whatever has no URL (embedded Postgres, embedded Redis), migrates the
database, then runs the API and one worker as child processes and waits for
``/readyz``. Ctrl-C (SIGINT), SIGTERM or SIGHUP stop everything in order:
API and worker first, then Redis, then Postgres. Every child is also tied to
this process with ``PR_SET_PDEATHSIG``, so even a ``kill -9`` of the supervisor
leaves no server behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx

from chatsys.infra.db import migrations
from chatsys.infra.embedded.process import spawn, stop_process
from chatsys.infra.embedded.server import EmbeddedServerError
from chatsys.infra.embedded.stack import EmbeddedStack
from chatsys.infra.settings import Settings

Say = Callable[[str], None]


class _Stop(BaseException):
    """Raised from a signal handler to unwind start-up or the wait loop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    _say(f"{signal.Signals(signum).name} received, shutting down")
    raise _Stop(signum)


def _say(message: str) -> None:
    print(f"chatsys: {message}", file=sys.stderr, flush=True)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@dataclass(slots=True)
class _Child:
    name: str
    proc: subprocess.Popen[bytes]


class DevSupervisor:
    def __init__(
        self,
        settings: Settings,
        *,
        host: str,
        port: int,
        with_worker: bool = True,
        ready_timeout: float = 60.0,
        say: Say = _say,
        local_key: Callable[[str], str] | None = None,
    ) -> None:
        self._settings = settings
        self._host = host
        self._port = port
        self._with_worker = with_worker
        self._ready_timeout = ready_timeout
        self._say = say
        self._local_key = local_key  # database URL -> the local admin key
        self._key: str | None = None
        self._children: list[_Child] = []

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._port}"

    def run(self) -> int:
        if not port_is_free(self._host, self._port):
            self._say(
                f"port {self._port} on {self._host} is already in use. Stop what uses it, "
                "or pick another port: chatsys dev --port 8001 (or CHATSYS_API_PORT)."
            )
            return 1
        previous = {
            sig: signal.signal(sig, _raise_stop)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        settings = self._settings
        stack = EmbeddedStack(
            settings.data_dir,
            database_url=_secret(settings.database.url),
            redis_url=_secret(settings.redis.url),
            progress=self._say,
        )
        code = 0
        try:
            with stack as endpoints:
                try:
                    code = self._serve(endpoints.database_url, endpoints.redis_url, stack)
                finally:
                    # Children first, while Postgres and Redis still answer them; and a
                    # second Ctrl-C must not interrupt the clean-up.
                    for sig in previous:
                        signal.signal(sig, signal.SIG_IGN)
                    self._stop_children()
        except _Stop:
            pass  # announced by the handler; the clean-up below is the shutdown
        except EmbeddedServerError as exc:
            self._say(str(exc))
            code = 1
        finally:
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)
            self._stop_children()
            stack.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self._say("stopped")
        return code

    def _serve(self, database_url: str, redis_url: str, stack: EmbeddedStack) -> int:
        self._say("applying database migrations")
        migrations.upgrade(database_url)
        if self._local_key is not None and self._settings.auth.enabled:
            self._key = self._local_key(database_url)
        env = {
            **os.environ,
            "CHATSYS_DATABASE_URL": database_url,
            "CHATSYS_REDIS_URL": redis_url,
            "CHATSYS_API_HOST": self._host,
            "CHATSYS_API_PORT": str(self._port),
        }
        self._start("api", env)
        if self._with_worker:
            self._start("worker", env)
        code = self._wait_ready()
        if code == 0:
            self._banner(stack)
            code = self._watch()
        return code

    def _start(self, role: str, env: dict[str, str]) -> None:
        proc = spawn([sys.executable, "-m", "chatsys", role], log=None, env=env)
        self._children.append(_Child(role, proc))

    def _exited(self) -> _Child | None:
        return next((c for c in self._children if c.proc.poll() is not None), None)

    def _wait_ready(self) -> int:
        deadline = time.monotonic() + self._ready_timeout
        last = "no answer yet"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                dead = self._exited()
                if dead is not None:
                    self._say(f"the {dead.name} process exited with code {dead.proc.returncode}")
                    return 1
                try:
                    answer = client.get(f"{self.base_url}/readyz")
                    if answer.status_code == 200:
                        return 0
                    down = {
                        name: part.get("detail")
                        for name, part in answer.json().get("components", {}).items()
                        if part.get("status") != "ok"
                    }
                    last = f"waiting for {down}"
                except httpx.HTTPError as exc:
                    last = f"API not answering yet ({type(exc).__name__})"
                time.sleep(0.2)
        self._say(f"not ready after {self._ready_timeout:g}s: {last}")
        return 1

    def _banner(self, stack: EmbeddedStack) -> None:
        data_dir = Path(self._settings.data_dir)
        pg = "embedded, data in " + str(data_dir / "postgres") if stack.postgres else "external"
        rd = "embedded, data in " + str(data_dir / "redis") if stack.redis else "external"
        pids = ", ".join(f"{c.name} pid {c.proc.pid}" for c in self._children)
        llm = self._settings.llm.model or "offline model (set CHATSYS_MODEL to use a provider)"
        self._say(
            f"ready at {self.base_url}  (API docs: {self.base_url}/docs)\n"
            f"  postgres: {pg}\n  redis:    {rd}\n  processes: {pids}\n  llm:      {llm}\n"
            "Press Ctrl-C to stop."
        )
        if self._key is not None:
            key_file = Path(self._settings.data_dir) / "admin.key"
            self._say(
                f"local admin key (also in {key_file}):\n  {self._key}\n"
                f"  curl -H 'Authorization: Bearer {self._key}' {self.base_url}/v1/me"
            )

    def _watch(self) -> int:
        while True:
            dead = self._exited()
            if dead is not None:
                self._say(
                    f"the {dead.name} process exited unexpectedly (code {dead.proc.returncode}); "
                    "stopping everything"
                )
                return 1
            time.sleep(0.5)

    def _stop_children(self) -> None:
        for child in self._children:
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        for child in self._children:
            stop_process(child.proc, first=signal.SIGTERM, grace=15.0)
        self._children.clear()


def _secret(value: object) -> str | None:
    if value is None:
        return None
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if getter else value)
