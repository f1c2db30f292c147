"""Streams across real processes: two `chatsys api` processes and one `chatsys worker`,
the worker's model served by the fake provider; events cross real Redis pub/sub."""

from __future__ import annotations

import asyncio
import json
import random
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.fakes.openai_compat import FakeOpenAI, RunningFake, run_fake_openai
from tests.streams import (
    TERMINAL,
    assert_gapless,
    deltas_by_step,
    drain_until_closed,
    read_sse,
    read_ws,
)
from tests.support import chatsys, clean_env, free_port, terminating, wait_ready


@pytest.fixture
def llm_server() -> Iterator[RunningFake]:
    with run_fake_openai() as running:
        yield running


@pytest.fixture
def fake(llm_server: RunningFake) -> FakeOpenAI:
    llm_server.fake.chunk_delay = 0.005
    return llm_server.fake


def env_for(database_url: str, redis_url: str, llm: RunningFake, port: int) -> dict[str, str]:
    return clean_env(
        CHATSYS_DATABASE_URL=database_url,
        CHATSYS_REDIS_URL=redis_url,
        CHATSYS_API_PORT=str(port),
        CHATSYS_MODEL="openai/gpt-4o-mini",
        CHATSYS_LLM_API_BASE=llm.base_url,
        CHATSYS_LLM_API_KEY="sk-test",
        CHATSYS_WORKER_HEARTBEAT_INTERVAL="0.5",
        CHATSYS_LOG_FORMAT="json",
    )


def check(events: list[dict[str, Any]], task: dict[str, Any]) -> None:
    assert_gapless(events)
    assert events[-1]["type"] in TERMINAL
    assert task["status"] == "succeeded"
    assert deltas_by_step(events) == {s["key"]: s["output"] for s in task["steps"]}


async def test_two_api_processes_stream_a_task_run_by_a_worker_process(
    database_url: str, redis_url: str, llm_server: RunningFake, fake: FakeOpenAI, tmp_path: Path
) -> None:
    ports = free_port(), free_port()
    log = tmp_path / "processes.log"
    a, b = (f"127.0.0.1:{p}" for p in ports)
    with (
        terminating(chatsys("api", env=env_for(database_url, redis_url, llm_server, ports[0]),
                            log=log)) as api_a,
        terminating(chatsys("api", env=env_for(database_url, redis_url, llm_server, ports[1]),
                            log=log)) as api_b,
        terminating(chatsys("worker", env=env_for(database_url, redis_url, llm_server, 1),
                            log=log)),
    ):  # fmt: skip
        wait_ready(f"http://{a}", 90, proc=api_a, log=log)
        wait_ready(f"http://{b}", 90, proc=api_b, log=log)
        http_a = httpx.AsyncClient(base_url=f"http://{a}", timeout=30)
        http_b = httpx.AsyncClient(base_url=f"http://{b}", timeout=30)
        async with http_a, http_b:
            # 1. Submitted on A; a WebSocket client on B and an SSE client on A.
            made = await http_a.post(
                "/v1/tasks", json={"input": "Write a function that adds 2 numbers",
                                   "agents": ["architect", "developer", "reviewer"]},
            )  # fmt: skip
            task_id = made.json()["id"]
            ws, sse = await asyncio.gather(
                read_ws(f"ws://{b}/v1/tasks/{task_id}/stream"),
                read_sse(http_a, f"/v1/tasks/{task_id}/events"),
            )
            task = (await http_b.get(f"/v1/tasks/{task_id}")).json()
            check(ws.events, task)
            assert ws.code == 1000
            assert sse.events == ws.events
            assert sum(e["type"] == "message.delta" for e in ws.events) >= 3

            # 2. Random disconnects, each reconnect on the other process.
            rng = random.Random(11)
            fake.chunk_delay = 0.02
            for _ in range(3):
                made = await http_b.post("/v1/tasks", json={"input": "Write a haiku"})
                task_id = made.json()["id"]
                seen: list[dict[str, Any]] = []
                hosts = [(a, http_a), (b, http_b)]
                turn = 0
                while not seen or seen[-1]["type"] not in TERMINAL:
                    where, http = hosts[turn % 2]
                    after = seen[-1]["seq"] if seen else 0
                    cut = rng.randint(1, 8)
                    if turn % 2:
                        url = f"ws://{where}/v1/tasks/{task_id}/stream?after={after}"
                        seen += (await read_ws(url, stop_after=cut)).events
                    else:
                        seen += (
                            await read_sse(
                                http, f"/v1/tasks/{task_id}/events",
                                last_event_id=after, stop_after=cut,
                            )
                        ).events  # fmt: skip
                    turn += 1
                assert turn > 2
                check(seen, (await http_a.get(f"/v1/tasks/{task_id}")).json())

            # 3. API process B shuts down mid-stream: its client is told "going away"
            #    and finishes on A without a gap.
            fake.chunk_delay = 0.03
            made = await http_a.post("/v1/tasks", json={"input": "Write a limerick"})
            task_id = made.json()["id"]
            got: list[dict[str, Any]] = []
            async with connect(f"ws://{b}/v1/tasks/{task_id}/stream") as ws_b:
                while len(got) < 5:
                    got.append(json.loads(await ws_b.recv()))
                api_b.send_signal(signal.SIGTERM)
                await drain_until_closed(ws_b, got)
            assert ws_b.close_code == 1001, (ws_b.close_code, ws_b.close_reason)
            resume = int((ws_b.close_reason or "").rsplit("after=", 1)[1])
            assert resume == got[-1]["seq"]
            rest = await read_ws(f"ws://{a}/v1/tasks/{task_id}/stream?after={resume}")
            check(got + rest.events, (await http_a.get(f"/v1/tasks/{task_id}")).json())
            assert api_b.wait(20) in (0, -signal.SIGTERM)
    text = log.read_text()
    assert "Traceback" not in text, text[text.find("Traceback") - 500 :][:4000]
    assert "sk-test" not in text  # the provider key never reaches a log
