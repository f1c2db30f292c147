"""Helpers shared by the test suites (real servers, never stand-ins)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, overload

import httpx
import psutil
from sqlalchemy.engine import make_url

# One free-port helper for the product (its embedded servers) and the tests.
from chatsys.infra.embedded.server import free_port as free_port  # noqa: PLC0414 (re-export)

ROOT = Path(__file__).resolve().parents[1]

T = TypeVar("T")
Message = str | Callable[[], str]  # a callable is asked at the timeout (a log's tail, say)


def plain_dsn(sqlalchemy_url: str, database: str | None = None) -> str:
    """asyncpg wants ``postgresql://``; our settings carry ``postgresql+asyncpg://``."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


def with_database(sqlalchemy_url: str, database: str) -> str:
    return make_url(sqlalchemy_url).set(database=database).render_as_string(hide_password=False)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a child chatsys process: no CHATSYS_* leaking in from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSYS_")}
    # API keys and rate limits are off unless the test is about them (it passes "true").
    env.update(CHATSYS_AUTH_ENABLED="false", CHATSYS_LIMITS_ENABLED="false")
    env.update(extra)
    return env


def chatsys(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "chatsys", *args],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )


class GiveUp(AssertionError):
    """Raised by a check given to :func:`eventually` to fail at once, not be tried again
    (the process it waits for has exited, say)."""


def _not_in_time(within: float, message: Message, value: object, error: object) -> str:
    said = message() if callable(message) else message
    head, _, rest = said.partition("\n")  # the first line leads, more (a log) comes last
    last = f"last error: {error}" if error is not None else f"last value: {value!r}"
    if len(last) > 4000:
        last = last[:4000] + " ..."
    prefix = f"{head}: " if head else ""
    text = f"{prefix}not true within {within}s; {last}"
    return f"{text}\n{rest}" if rest else text


@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    within: float = 20.0,
    every: float = 0.05,
    message: Message = "",
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T | None],
    *,
    within: float = 20.0,
    every: float = 0.05,
    message: Message = "",
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    *,
    within: float = 20.0,
    every: float = 0.05,
    message: Message = "",
) -> Any:
    """Call ``check`` (sync or async) every ``every`` s until it returns something truthy
    without raising ``AssertionError``, and return that. A check that only asserts must
    return something truthy too (``True``): ``None`` counts as "not yet".

    After ``within`` s it raises ``AssertionError`` with ``message``, the last value and
    the last ``AssertionError``. Other exceptions, and :class:`GiveUp`, end it at once.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        error: AssertionError | None = None
        value: Any = None
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
        except GiveUp:
            raise
        except AssertionError as exc:
            error = exc
        else:
            if value:
                return value
        if loop.time() >= deadline:
            raise AssertionError(_not_in_time(within, message, value, error)) from error
        await asyncio.sleep(every)


def eventually_sync(
    check: Callable[[], T | None],
    *,
    within: float = 20.0,
    every: float = 0.05,
    message: Message = "",
) -> T:
    """:func:`eventually` for plain (blocking) code: the same rules, with ``time.sleep``."""
    deadline = time.monotonic() + within
    while True:
        error: AssertionError | None = None
        value: T | None = None
        try:
            value = check()
        except GiveUp:
            raise
        except AssertionError as exc:
            error = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            raise AssertionError(_not_in_time(within, message, value, error)) from error
        time.sleep(every)


def wait_ready(
    base_url: str,
    timeout: float,
    *,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> dict[str, object]:
    def tail() -> str:
        return log.read_text()[-3000:] if log else ""

    def ready() -> dict[str, object]:
        if proc is not None and proc.poll() is not None:
            raise GiveUp(f"process exited with {proc.returncode} before ready:\n{tail()}")
        try:
            answer = httpx.get(f"{base_url}/readyz", timeout=2)
        except httpx.HTTPError as exc:
            raise AssertionError(repr(exc)) from None
        body: dict[str, object] = answer.json()
        assert answer.status_code == 200, f"answer {body}"
        return body

    return eventually_sync(
        ready, within=timeout, every=0.2, message=lambda: f"{base_url} not ready\n{tail()}"
    )


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def alive(procs: list[psutil.Process]) -> list[str]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            continue
    return out


def processes_mentioning(text: str) -> list[str]:
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if text in cmd and p.pid != os.getpid():
            found.append(f"{p.pid} {cmd[:120]}")
    return found


async def stop_worker(worker: Any, job: asyncio.Task[Any] | None = None) -> None:
    """Stop an in-process arq worker for good: let jobs in flight finish (bounded), stop
    its loop, and make sure its shutdown hook ran. arq's ``close()`` gathers cancelled
    job tasks without ``return_exceptions``, so a job cut short would skip the hook and
    leave the heartbeat and maintenance loop of a worker running into the next test."""
    with contextlib.suppress(AssertionError):  # at most 10 s, then stop it anyway
        await eventually(lambda: all(t.done() for t in worker.tasks.values()), within=10)
    if job is not None:
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)
    try:
        await worker.close()
    except asyncio.CancelledError:
        await worker.on_shutdown(worker.ctx)


@contextmanager
def terminating(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
