"""The one stack the chaos scenarios (``tests/chaos``, ``python -m bench --scenario chaos``)
run on: two ``chatsys api`` and two ``chatsys worker`` processes with API keys on, on the
Postgres and Redis they are given, their model served by the fake provider; every process
started is tracked with a log of its own, and the logs are grepped for secrets at the end.

Its clients are what a user would write: SSE over httpx that resumes with
``Last-Event-ID`` on the other API process when its connection breaks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
from sqlalchemy.engine import make_url

from tests.fakes.openai_compat import RunningFake
from tests.live import admin_key
from tests.streams import TERMINAL
from tests.support import chatsys, clean_env, eventually, free_port, wait_ready

ENDED = {"succeeded", "failed", "cancelled"}
REQUEST = (
    "Implement a distributed rate limiter service in Go backed by Redis, used by all our "
    "microservices, with per-tenant quotas and an admin REST API"
)
# What a leaked secret looks like in a line (the scrubber leaves ``whsec_***`` and the
# like); the stack adds the literal values it knows (keys, passwords, signing secrets).
LEAK_PATTERNS = {
    "whsec_": re.compile(r"whsec_(?!\*\*\*)[A-Za-z0-9+/=_-]{4,}"),
    "cst_": re.compile(r"cst_(?!\*\*\*)[A-Za-z0-9+/=_-]{4,}"),
    "csk_": re.compile(r"csk_[A-Za-z0-9]{12}_(?!\*\*\*)[A-Za-z0-9+/=_-]{4,}"),
    "URL password": re.compile(r"://[^:/@\s\"'\\]*:(?!\*\*\*@)[^@\s/\"'\\]+@"),
}


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    killed: bool = False  # by the scenario, on purpose


@dataclass(frozen=True)
class LogGrep:
    scenario: str
    log: str
    lines: int
    hits: dict[str, int]


GREPS: list[LogGrep] = []  # every log grepped in this process (the summary prints it)
OUTCOMES: list[str] = []  # one line per scenario run (the summary prints them too)


def grep_logs(scenario: str, logs: list[Path], secrets: set[str]) -> list[LogGrep]:
    literals = sorted((s for s in secrets if len(s) >= 6), key=len, reverse=True)
    found = []
    for log in logs:
        text = log.read_text(errors="replace") if log.exists() else ""
        hits = {name: len(p.findall(text)) for name, p in LEAK_PATTERNS.items()}
        hits["configured secret"] = sum(text.count(s) for s in literals)
        found.append(LogGrep(scenario, log.name, len(text.splitlines()), hits))
    GREPS.extend(found)
    return found


def ts(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["ts"]).timestamp()


class Retry(Exception):
    """The stream answered, but not with events (503 while a server is away): try again."""


async def sse_events(
    http: httpx.AsyncClient, url: str, after: int | None
) -> AsyncIterator[dict[str, Any]]:
    headers = {"Accept": "text/event-stream"}
    if after is not None:
        headers["Last-Event-ID"] = str(after)
    async with http.stream("GET", url, headers=headers) as answer:
        if answer.status_code != 200:
            await answer.aread()
            raise Retry(answer.status_code)
        data, ident = "", None
        async for line in answer.aiter_lines():
            if line.startswith("data: "):
                data = line[6:]
            elif line.startswith("id: "):
                ident = int(line[4:])
            elif line == "" and data:
                if ident is not None:
                    yield json.loads(data)
                data, ident = "", None


@dataclass
class Followed:
    task_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    reconnects: int = 0
    refused: int = 0  # answers other than a stream (503 meanwhile)

    @property
    def seqs(self) -> list[int]:
        return [e["seq"] for e in self.events]


@dataclass
class ChaosStack:
    """Start with :meth:`start` (or ``async with``); ``apis`` and ``workers`` are the
    current processes, ``procs`` every one ever started."""

    scenario: str
    database_url: str
    redis_url: str
    llm: RunningFake
    logdir: Path
    extra: dict[str, str] = field(default_factory=dict)
    server_logs: list[Path] = field(default_factory=list)  # embedded servers of its own
    procs: list[Proc] = field(default_factory=list)
    apis: list[Proc] = field(default_factory=list)
    workers: list[Proc] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    clients: list[httpx.AsyncClient] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    ids: list[str] = field(default_factory=list)  # every task accepted (202)
    markers: dict[str, str] = field(default_factory=dict)  # task id: its mark in the prompt
    key: str = ""
    env: dict[str, str] = field(default_factory=dict)

    async def __aenter__(self) -> ChaosStack:
        try:
            await self.start()
        except BaseException:
            await self.stop()  # what did start, stops
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self.logdir.mkdir(parents=True, exist_ok=True)
        provider_key = f"sk-chaos-{uuid4().hex}"
        self.env = clean_env(
            CHATSYS_DATABASE_URL=self.database_url,
            CHATSYS_REDIS_URL=self.redis_url,
            CHATSYS_MODEL="openai/gpt-4o-mini",
            CHATSYS_LLM_API_BASE=self.llm.base_url,
            CHATSYS_LLM_API_KEY=provider_key,
            CHATSYS_AUTH_ENABLED="true",
            CHATSYS_WEBHOOKS_ALLOW_PRIVATE_NETWORKS="true",
            CHATSYS_WORKER_HEARTBEAT_INTERVAL="0.5",
            CHATSYS_WORKER_HEARTBEAT_TTL="2",
            CHATSYS_LOG_FORMAT="json",
            **self.extra,
        )
        self.key = await asyncio.to_thread(admin_key, self.database_url)
        self.secrets |= {provider_key, self.key}
        for url in (self.database_url, self.redis_url):
            if password := make_url(url).password:
                self.secrets.add(str(password))
        self.ports = [free_port(), free_port()]
        for index in range(2):
            self.apis.append(self._spawn("api", index))
            self.workers.append(self._spawn("worker", index))
            self.clients.append(
                httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{self.ports[index]}",
                    headers={"Authorization": f"Bearer {self.key}"},
                    timeout=httpx.Timeout(15, read=30),
                )
            )
        for index in range(2):
            await self.wait_api(index)
        await self.wait_workers(2)

    def _spawn(self, kind: str, index: int) -> Proc:
        started = sum(p.name.startswith(f"{kind}-{index + 1}") for p in self.procs)
        name = f"{kind}-{index + 1}" + (f".{started + 1}" if started else "")
        log = self.logdir / f"{self.scenario}.{name}.log"
        env = dict(self.env)
        if kind == "api":
            env["CHATSYS_API_PORT"] = str(self.ports[index])
        proc = Proc(name, chatsys(kind, env=env, log=log), log)
        self.procs.append(proc)
        return proc

    async def wait_api(self, index: int) -> None:
        proc = self.apis[index]
        base = f"http://127.0.0.1:{self.ports[index]}"
        await asyncio.to_thread(wait_ready, base, 240, proc=proc.popen, log=proc.log)

    async def wait_workers(self, count: int) -> None:
        async def enough() -> bool:
            body = (await self.clients[0].get("/readyz")).json()
            return bool(body["components"]["worker"]["info"].get("workers", 0) >= count)

        await eventually(enough, within=240, every=0.2, message=f"waiting for {count} workers")

    def kill(self, proc: Proc) -> float:
        """SIGKILL; returns when it was sent (monotonic)."""
        proc.killed = True
        proc.popen.send_signal(signal.SIGKILL)
        at = time.monotonic()
        proc.popen.wait(10)
        return at

    def replace_worker(self, proc: Proc) -> None:
        index = self.workers.index(proc)
        self.workers[index] = self._spawn("worker", index)

    async def replace_api(self, proc: Proc) -> None:
        index = self.apis.index(proc)
        self.apis[index] = self._spawn("api", index)
        await self.wait_api(index)

    def exits(self) -> list[str]:
        """Processes that ended without being killed on purpose."""
        return [
            f"{p.name} exited {p.popen.returncode}"
            for p in self.procs
            if not p.killed and p.popen.poll() is not None
        ]

    async def stop(self) -> None:
        for client in self.clients:
            await client.aclose()
        live = [p for p in self.procs if p.popen.poll() is None]
        for proc in live:
            proc.popen.terminate()
        for proc in live:
            try:
                await asyncio.to_thread(proc.popen.wait, 30)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                await asyncio.to_thread(proc.popen.wait, 5)

    def grep(self) -> list[LogGrep]:
        logs = [p.log for p in self.procs] + self.server_logs
        return grep_logs(self.scenario, logs, self.secrets)

    # -- the client side ------------------------------------------------------------

    async def submit(self, marker: str, api: int = 0, **fields: Any) -> dict[str, Any]:
        answer = await self.clients[api].post(
            "/v1/tasks", json={"input": f"{REQUEST} ({marker})", **fields}
        )
        assert answer.status_code == 202, answer.text
        body: dict[str, Any] = answer.json()
        self.ids.append(body["id"])
        self.markers[body["id"]] = marker
        if body.get("webhook_secret"):
            self.secrets.add(body["webhook_secret"])
        return body

    async def events(self, task_id: str, api: int = 0) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            params = {"after": found[-1]["seq"] if found else 0, "limit": 1000}
            page = await self.clients[api].get(f"/v1/tasks/{task_id}/events", params=params)
            items: list[dict[str, Any]] = page.json()["items"]
            found += items
            if len(items) < 1000:
                return found

    async def of_type(self, task_id: str, kind: str) -> list[dict[str, Any]]:
        return [e for e in await self.events(task_id) if e["type"] == kind]

    async def status(self, task_id: str, api: int = 0) -> str:
        status: str = (await self.clients[api].get(f"/v1/tasks/{task_id}")).json()["status"]
        return status

    async def all_ended(self, ids: list[str] | None = None) -> bool:
        for task_id in ids if ids is not None else self.ids:
            answer = await self.clients[0].get(f"/v1/tasks/{task_id}")
            if answer.status_code != 200 or answer.json()["status"] not in ENDED:
                return False
        return True

    async def follow(
        self, task_id: str, prefer: int = 0, within: float = 120, into: Followed | None = None
    ) -> Followed:
        """Read a task's stream to its end as a resuming client: after a broken
        connection or a refusal, again with ``Last-Event-ID`` on the other API process."""
        got = into or Followed(task_id)
        turn = prefer
        deadline = time.monotonic() + within
        while not got.events or got.events[-1]["type"] not in TERMINAL:
            if time.monotonic() > deadline:
                raise AssertionError(f"stream of {task_id} not ended within {within}s")
            http = self.clients[turn % len(self.clients)]
            after = got.events[-1]["seq"] if got.events else None
            try:
                async for event in sse_events(http, f"/v1/tasks/{task_id}/events", after):
                    got.events.append(event)
                    if event["type"] in TERMINAL:
                        break
            except Retry:
                got.refused += 1
            except httpx.HTTPError:
                pass
            if got.events and got.events[-1]["type"] in TERMINAL:
                break
            got.reconnects += 1
            turn += 1
            await asyncio.sleep(0.2)
        return got

    def calls_after(self, marker: str, step: str, since: float) -> int:
        fake = self.llm.fake
        with fake._lock:
            return sum(
                1 for c in fake.calls if c.step == step and marker in c.last_user and c.at > since
            )


@contextlib.contextmanager
def pacing(llm: RunningFake, latency: float, chunk_delay: float) -> Any:
    llm.fake.configure(latency=latency, chunk_delay=chunk_delay)
    try:
        yield
    finally:
        llm.fake.configure(latency=0.0, chunk_delay=0.0)
