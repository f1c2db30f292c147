"""The servers a process needs and has no URL for, started under a lock on the data dir."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from chatsys.infra.embedded.postgres import EmbeddedPostgres, running_url
from chatsys.infra.embedded.redis import EmbeddedRedis
from chatsys.infra.embedded.server import EmbeddedServerError, Progress, quiet


class DataDirInUse(EmbeddedServerError):
    """Another chatsys process holds the data dir (and runs its servers)."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


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
            raise DataDirInUse(
                f"the data dir {self.path.parent} is in use by another chatsys process "
                f"(pid {holder}). Stop that one first, or choose another CHATSYS_DATA_DIR.",
                holder,
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
        progress: Progress = quiet,
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


@dataclass(frozen=True, slots=True)
class OneOffDatabase:
    url: str
    started_here: bool  # True: Postgres was started for this command (and is stopped after)


@contextmanager
def one_off_database(
    data_dir: Path, *, database_url: str | None, progress: Progress = quiet
) -> Iterator[OneOffDatabase]:
    """The database for a one-off command (`chatsys keys create`): the configured URL;
    else the data dir's embedded Postgres, the one a running `chatsys dev` serves, or,
    when none runs, one started for the command alone and stopped after it."""
    if database_url is not None:
        yield OneOffDatabase(database_url, started_here=False)
        return
    stack = EmbeddedStack(
        data_dir, database_url=None, redis_url=None, want_redis=False, progress=progress
    )
    try:
        endpoints = stack.__enter__()
    except DataDirInUse as busy:
        url = running_url(data_dir)
        if url is None:
            raise EmbeddedServerError(
                f"the data dir {data_dir} is in use by another chatsys process (pid "
                f"{busy.holder}) whose Postgres is not ready; try again once it is "
                "(`chatsys dev` prints `ready at ...`)"
            ) from None
        progress(f"using the embedded Postgres of the chatsys process {busy.holder}")
        yield OneOffDatabase(url, started_here=False)
        return
    try:
        yield OneOffDatabase(endpoints.database_url, started_here=True)
    finally:
        stack.close()
