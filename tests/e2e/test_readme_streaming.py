"""The README's streaming examples, run as a user runs them, against live `chatsys api` and
`chatsys worker` processes with API keys on, the model served by the fake provider.

What is changed in the examples, and nothing else: the address ``127.0.0.1:8000`` becomes
the port of the API (or of a proxy in front of it); the key and ``$TASK`` come from the
environment, as the README says; `follow.py` is the block saved to a file and run with
``python follow.py TASK_ID``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import random
import shutil
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from chatsys.bootstrap import build_app
from chatsys.infra.embedded.stack import Endpoints
from chatsys.infra.settings import (
    AuthSettings,
    DatabaseSettings,
    Environment,
    LimitSettings,
    RedisSettings,
    Settings,
    StreamSettings,
)
from tests import readme
from tests.fakes.openai_compat import FakeOpenAI, RunningFake, run_fake_openai
from tests.live import Live, child_env, live_chatsys
from tests.streams import TERMINAL, assert_gapless, serve
from tests.support import GiveUp, eventually, free_port, wait_ready
from tests.ws_proxy import WsProxy


@pytest.fixture(scope="module")
def llm() -> Iterator[RunningFake]:
    with run_fake_openai() as running:
        yield running


@pytest.fixture(scope="module")
def live(
    servers: Endpoints,
    template_database: str,
    llm: RunningFake,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Live]:
    log = tmp_path_factory.mktemp("readme-streaming") / "chatsys.log"
    with live_chatsys(
        servers,
        template_database,
        log,
        CHATSYS_MODEL="openai/gpt-4o-mini",
        CHATSYS_LLM_API_BASE=llm.base_url,
        CHATSYS_LLM_API_KEY="sk-test",
    ) as running:
        yield running
    text = log.read_text()
    assert "Traceback" not in text, text[text.find("Traceback") - 500 :][:4000]


@pytest.fixture
def fake(llm: RunningFake) -> FakeOpenAI:
    llm.fake.reset()
    return llm.fake


def submit(live: Live, text: str = "Write a haiku about streams") -> str:
    with live.http() as http:
        made = http.post("/v1/tasks", json={"input": text})
    assert made.status_code == 202, made.text
    task_id: str = made.json()["id"]
    return task_id


def logged_events(live: Live, task_id: str) -> list[dict[str, Any]]:
    """The task's whole event log, page by page."""
    events: list[dict[str, Any]] = []
    with live.http() as http:
        while True:
            after = events[-1]["seq"] if events else 0
            page = http.get(f"/v1/tasks/{task_id}/events", params={"after": after, "limit": 1000})
            assert page.status_code == 200, page.text
            events += page.json()["items"]
            if not page.json()["items"]:
                return events


def streamed_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["data"]["text"] for e in events if e["type"] == "message.delta")


async def succeeded(live: Live, task_id: str) -> bool:
    headers = {"Authorization": f"Bearer {live.key}"}
    async with httpx.AsyncClient(base_url=live.base, headers=headers, timeout=30) as http:
        state: str = (await http.get(f"/v1/tasks/{task_id}")).json()["status"]
    assert state in ("queued", "running", "succeeded"), state
    return state == "succeeded"


# -- curl --------------------------------------------------------------------------------


def sse_runs(output: str) -> list[list[tuple[int, str]]]:
    """The (seq, type) of every event in curl's output, split into one list per stream
    (a stream's seqs follow each other; the next stream starts elsewhere)."""
    runs: list[list[tuple[int, str]]] = []
    for chunk in output.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in chunk.splitlines() if ": " in line)
        if "id" not in fields:
            continue
        seq, kind = int(fields["id"]), fields["event"]
        assert json.loads(fields["data"])["seq"] == seq
        if not runs or runs[-1][-1][0] + 1 != seq:
            runs.append([])
        runs[-1].append((seq, kind))
    return runs


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl on this machine")
def test_the_curl_block_streams_a_running_task_and_resumes_after_last_event_id(
    live: Live, fake: FakeOpenAI, tmp_path: Path
) -> None:
    code = readme.block("streaming-curl").on_port(live.port)
    resume_at = int(code.split("Last-Event-ID: ")[1].split("'")[0])
    (tmp_path / ".chatsys").mkdir()
    (tmp_path / ".chatsys" / "admin.key").write_text(live.key + "\n")  # as `make run` writes
    fake.chunk_delay = 0.01  # tokens that come together share an event: 300 make > 42 events
    fake.queue_reply(" ".join(f"word{i}" for i in range(300)))
    task_id = submit(live)

    # the block as a script, in a checkout with `.chatsys/admin.key`
    ran = readme.run_shell(code, cwd=tmp_path, env=child_env(TASK=task_id))
    assert ran.returncode == 0, ran.stderr[-2000:]
    events = logged_events(live, task_id)
    assert events[-1]["type"] in TERMINAL
    assert len(events) > resume_at
    everything = [(e["seq"], e["type"]) for e in events]
    # the first command: every event, up to the terminal one; the second: those after 42
    assert sse_runs(ran.stdout) == [everything, everything[resume_at:]], ran.stdout[-2000:]


# -- follow() ----------------------------------------------------------------------------


@dataclass
class Following:
    """`python follow.py TASK_ID`, running, its output read as it comes."""

    proc: asyncio.subprocess.Process
    out: bytearray = field(default_factory=bytearray)
    reading: asyncio.Task[None] | None = None

    @property
    def text(self) -> str:
        return self.out.decode("utf-8", "replace")

    async def printed(self, words: str, within: float = 30) -> None:
        def shown() -> bool:
            if self.proc.returncode is not None:
                raise GiveUp(f"follow.py ended with {self.proc.returncode}: {self.text[-500:]}")
            return words in self.text

        await eventually(shown, within=within, message=f"follow.py did not print {words!r}")

    async def finish(self, within: float = 60) -> tuple[int, str, str]:
        assert self.proc.stderr is not None
        assert self.reading is not None
        async with asyncio.timeout(within):
            errors = await self.proc.stderr.read()
            await self.reading
            code = await self.proc.wait()
        return code, self.text, errors.decode()


def follow_script(tmp_path: Path, port: int) -> Path:
    script = tmp_path / "follow.py"
    script.write_text(readme.block("streaming-follow").on_port(port))
    return script


@contextlib.asynccontextmanager
async def following(script: Path, task_id: str, key: str) -> AsyncIterator[Following]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        task_id,
        env=child_env(CHATSYS_API_KEY=key),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    run = Following(proc)

    async def read() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            run.out += chunk

    run.reading = asyncio.create_task(read())
    try:
        yield run
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        run.reading.cancel()


async def test_follow_resumes_after_a_dropped_connection_and_an_api_going_away(
    live: Live, fake: FakeOpenAI, tmp_path: Path
) -> None:
    """follow.py reaches the API through a proxy (a load balancer): the proxy drops the
    connection mid-stream, then the API process it is connected to is stopped (1001)
    while another one serves; the text printed is the task's, every token once."""
    fake.chunk_delay = 0.04
    fake.queue_reply(" ".join(f"w{i}" for i in range(120)))
    other = free_port()
    with live.api(other) as going:
        wait_ready(f"http://127.0.0.1:{other}", 90, proc=going, log=live.log)
        async with WsProxy(target=other) as proxy:
            task_id = submit(live)
            async with following(follow_script(tmp_path, proxy.port), task_id, live.key) as run:
                await run.printed("w10 ")
                proxy.drop()
                await run.printed("w40 ")
                proxy.target = live.port  # new connections go to the API that stays
                going.send_signal(signal.SIGTERM)
                code, printed, errors = await run.finish()
        assert going.wait(30) in (0, -signal.SIGTERM)
    assert code == 0, errors[-2000:]
    events = logged_events(live, task_id)
    assert_gapless(events)
    assert events[-1]["type"] == "task.succeeded"
    assert "w119" in printed
    assert printed == streamed_text(events)  # nothing lost, nothing twice
    assert proxy.close_codes[0] is None  # dropped: no close frame
    assert 1001 in proxy.close_codes
    assert proxy.close_codes[-1] == 1000


async def test_follow_resumes_after_it_was_too_slow(
    live: Live, fake: FakeOpenAI, tmp_path: Path
) -> None:
    """An API holding 8 live events per subscriber (CHATSYS_STREAM_BUFFER=8), served with a
    small kernel send buffer; follow.py behind a proxy that stops reading for a while, so
    the reader falls behind: the API cuts it off with 4008 and follow.py resumes."""
    settings = Settings(
        environment=Environment.TEST,
        data_dir=tmp_path / "data",
        database=DatabaseSettings(url=SecretStr(live.database_url), pool_size=3),
        redis=RedisSettings(url=SecretStr(live.redis_url)),
        auth=AuthSettings(enabled=True),
        limits=LimitSettings(enabled=False),
        stream=StreamSettings(buffer=8, close_timeout=30),
    )
    app = build_app(settings)
    fake.chunk_delay = 0.001
    noise = random.Random(8)  # the client takes permessage-deflate: text that does not shrink
    fake.queue_reply(" ".join(f"token{i}-" + noise.randbytes(125).hex() for i in range(2000)))
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        host = await stack.enter_async_context(serve(app, send_buffer=16384))
        proxy = await stack.enter_async_context(WsProxy(target=int(host.split(":")[1])))
        task_id = submit(live)
        async with following(follow_script(tmp_path, proxy.port), task_id, live.key) as run:
            await run.printed("token5-")
            proxy.pause()
            await eventually(lambda: succeeded(live, task_id), within=60, every=0.2)
            proxy.resume()
            code, printed, errors = await run.finish()
    assert code == 0, errors[-2000:]
    events = logged_events(live, task_id)
    assert "token1999-" in printed
    assert printed == streamed_text(events)  # nothing lost, nothing twice
    assert 4008 in proxy.close_codes, proxy.close_codes
    assert proxy.close_codes[-1] == 1000


async def test_follow_stops_with_a_clear_error_on_a_bad_key_and_an_unknown_task(
    live: Live, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = follow_script(tmp_path, live.port)
    task_id = submit(live)
    async with following(script, task_id, "csk_nope_" + "x" * 32) as run:
        code, printed, errors = await run.finish()
    assert code == 1
    assert printed == ""
    assert errors.splitlines()[-1].startswith(
        "StreamRefused: bad API key or ticket (close 4401: a valid API key is required"
    ), errors
    async with following(script, str(uuid.uuid4()), live.key) as run:
        code, _, errors = await run.finish()
    assert code == 1
    assert "StreamRefused: no such task (close 4404: task " in errors.splitlines()[-1], errors

    # follow() as a function: a bad `after` is refused too (4400)
    monkeypatch.setenv("CHATSYS_API_KEY", live.key)
    spec = importlib.util.spec_from_file_location("readme_follow", script)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(module.StreamRefused, match=r"^bad after \(close 4400: after must be"):
        await asyncio.wait_for(module.follow(task_id, after=-1), 30)
