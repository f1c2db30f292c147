"""Helpers shared by the test suites (real servers, never stand-ins)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]


def plain_dsn(sqlalchemy_url: str, database: str | None = None) -> str:
    """asyncpg wants ``postgresql://``; our settings carry ``postgresql+asyncpg://``."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


def with_database(sqlalchemy_url: str, database: str) -> str:
    return make_url(sqlalchemy_url).set(database=database).render_as_string(hide_password=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


def wait_ready(
    base_url: str,
    timeout: float,
    *,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log else ""
            raise AssertionError(f"process exited with {proc.returncode} before ready:\n{tail}")
        try:
            answer = httpx.get(f"{base_url}/readyz", timeout=2)
            last = answer.json()
            if answer.status_code == 200:
                return answer.json()  # type: ignore[no-any-return]
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    tail = log.read_text()[-3000:] if log else ""
    raise AssertionError(f"not ready within {timeout}s; last answer {last}\n{tail}")


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
    for _ in range(200):
        if all(t.done() for t in worker.tasks.values()):
            break
        await asyncio.sleep(0.05)
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
