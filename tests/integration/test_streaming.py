"""Live streams over real HTTP and WebSocket, from a real worker through LiteLLM and the
fake provider, with events crossing real Redis pub/sub."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from arq.worker import Worker
from fastapi import FastAPI
from pydantic import SecretStr
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chatsys.infra.settings import LLMSettings, Settings, StreamSettings
from tests.fakes.openai_compat import FakeOpenAI, RunningFake, run_fake_openai
from tests.integration.test_task_pipeline import wait_for
from tests.streams import (
    TERMINAL,
    assert_gapless,
    deltas_by_step,
    drain_until_closed,
    next_frame,
    read_sse,
    read_ws,
    serve,
    small_receive_buffer_socket,
)
from tests.support import eventually

MODEL = "openai/gpt-4o-mini"
LONG_REPLY = " ".join(f"word{i}" for i in range(60))


@pytest.fixture
def llm_server() -> Iterator[RunningFake]:
    with run_fake_openai() as running:
        yield running


@pytest.fixture
def fake(llm_server: RunningFake) -> FakeOpenAI:
    llm_server.fake.chunk_delay = 0.002
    return llm_server.fake


@pytest.fixture
def settings(settings: Settings, llm_server: RunningFake) -> Settings:
    settings.llm = LLMSettings(
        CHATSYS_MODEL=MODEL,
        api_base=llm_server.base_url,
        api_key=SecretStr("sk-test-key"),
        num_retries=0,
        timeout=10,
        cooldown_seconds=0,
    )
    settings.stream = StreamSettings(keepalive=1.0, buffer=64, close_timeout=5, max_subscriptions=3)
    return settings


@pytest.fixture
async def host(app: FastAPI) -> AsyncIterator[str]:
    async with serve(app) as where:
        yield where


@pytest.fixture
async def http(host: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://{host}", timeout=30) as client:
        yield client


async def submit(
    http: httpx.AsyncClient, text: str = "Write a function that adds two numbers"
) -> str:
    made = await http.post("/v1/tasks", json={"input": text, "agents": ["developer", "reviewer"]})
    assert made.status_code == 202, made.text
    task_id: str = made.json()["id"]
    return task_id


def check_complete(events: list[dict[str, Any]], task: dict[str, Any]) -> None:
    """Every event once, in order, ending with the outcome; the streamed tokens add up
    to the outputs stored on the task."""
    assert_gapless(events)
    assert events[0]["type"] == "task.created"
    assert events[-1]["type"] in TERMINAL
    assert sum(e["type"] in TERMINAL for e in events) == 1
    outputs = {s["key"]: s["output"] for s in task["steps"]}
    assert deltas_by_step(events) == outputs
    assert sum(e["type"] == "message.delta" for e in events) >= len(outputs)


async def test_sse_and_websocket_each_get_every_event_and_token_in_order(
    http: httpx.AsyncClient, host: str, worker: Worker, fake: FakeOpenAI
) -> None:
    task_id = await submit(http)
    sse, ws = await asyncio.gather(
        read_sse(http, f"/v1/tasks/{task_id}/events"),
        read_ws(f"ws://{host}/v1/tasks/{task_id}/stream"),
    )
    task = (await http.get(f"/v1/tasks/{task_id}")).json()
    assert task["status"] == "succeeded"
    check_complete(sse.events, task)
    assert ws.events == sse.events
    assert ws.code == 1000
    assert ws.reason == "task finished"
    # A browser's EventSource reconnects after the end: it is told there is no more.
    again = await read_sse(http, f"/v1/tasks/{task_id}/events", last_event_id=sse.events[-1]["seq"])
    assert again.status == 204


async def test_a_reconnecting_client_gets_each_missed_event_exactly_once(
    http: httpx.AsyncClient, host: str, worker: Worker, fake: FakeOpenAI
) -> None:
    fake.chunk_delay = 0.01
    rng = random.Random(7)
    for _ in range(2):
        task_id = await submit(http)
        seen: list[dict[str, Any]] = []
        use_sse = True
        while not seen or seen[-1]["type"] not in TERMINAL:
            cut = rng.randint(1, 12)
            after = seen[-1]["seq"] if seen else 0
            if use_sse:
                read = await read_sse(
                    http, f"/v1/tasks/{task_id}/events", last_event_id=after, stop_after=cut
                )
                seen += read.events
            else:
                url = f"ws://{host}/v1/tasks/{task_id}/stream?after={after}"
                seen += (await read_ws(url, stop_after=cut)).events
            use_sse = not use_sse
        check_complete(seen, (await http.get(f"/v1/tasks/{task_id}")).json())


async def test_a_late_subscriber_gets_the_whole_history_and_the_close(
    http: httpx.AsyncClient, host: str, worker: Worker, fake: FakeOpenAI
) -> None:
    task_id = await submit(http)
    task = await wait_for(http, task_id)
    sse = await read_sse(http, f"/v1/tasks/{task_id}/events")
    ws = await read_ws(f"ws://{host}/v1/tasks/{task_id}/stream")
    check_complete(sse.events, task)
    assert ws.events == sse.events
    assert ws.code == 1000
    tail = await read_ws(f"ws://{host}/v1/tasks/{task_id}/stream?after=3")
    assert tail.events == sse.events[3:]


async def test_a_stalled_consumer_is_cut_off_and_a_normal_one_is_not_held_up(
    http: httpx.AsyncClient, app: FastAPI, worker: Worker, fake: FakeOpenAI
) -> None:
    fake.chunk_delay = 0.001
    fake.queue_reply(" ".join(f"token{i}-" + "x" * 250 for i in range(2000)))
    task_id = await submit(http)
    async with contextlib.AsyncExitStack() as stack:
        host = await stack.enter_async_context(serve(app, send_buffer=16384))
        url = f"ws://{host}/v1/tasks/{task_id}/stream"
        h, p = host.split(":")
        sock = small_receive_buffer_socket(h, int(p))
        stalled = await stack.enter_async_context(
            connect(url, sock=sock, max_queue=1, compression=None)
        )
        normal = await read_ws(url)  # reads everything while `stalled` reads nothing
        lag = time.time() - datetime.fromisoformat(normal.events[-1]["ts"]).timestamp()
        task = (await http.get(f"/v1/tasks/{task_id}")).json()
        check_complete(normal.events, task)
        assert normal.code == 1000
        assert lag < 2.0, f"the normal consumer got the end {lag:.2f}s late"
        received: list[dict[str, Any]] = []
        await drain_until_closed(stalled, received)
        assert stalled.close_code == 4008, (stalled.close_code, stalled.close_reason)
        reason = stalled.close_reason or ""
        assert "slow consumer" in reason
        resume_after = int(reason.rsplit("after=", 1)[1])
        assert received
        assert received[-1]["seq"] == resume_after
        assert_gapless(received)
        assert len(received) < len(normal.events)
        # ... and it picks up where it was cut off.
        rest = await read_ws(f"{url}?after={resume_after}")
        assert received + rest.events == normal.events


async def test_streams_survive_a_lost_pubsub_connection(
    http: httpx.AsyncClient, host: str, worker: Worker, fake: FakeOpenAI, redis_url: str
) -> None:
    fake.chunk_delay = 0.01
    fake.queue_reply(LONG_REPLY)
    task_id = await submit(http)
    reading = asyncio.create_task(read_ws(f"ws://{host}/v1/tasks/{task_id}/stream"))
    admin = aioredis.Redis.from_url(redis_url)
    try:
        channel = f"chatsys:ev:task:{task_id}"

        async def subscribed() -> int:
            listeners: int = (await admin.pubsub_numsub(channel))[0][1]
            return listeners

        await eventually(subscribed, within=10, every=0.02, message=f"nobody on {channel}")
        await asyncio.sleep(0.2)  # mid-stream
        killed = await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    finally:
        await admin.aclose()
    assert killed >= 1
    ws = await asyncio.wait_for(reading, 30)
    assert ws.code == 1000
    check_complete(ws.events, (await http.get(f"/v1/tasks/{task_id}")).json())


async def test_sse_keepalive_while_idle_and_going_away(
    http: httpx.AsyncClient, host: str, app: FastAPI
) -> None:
    made = await http.post("/v1/tasks", json={"input": "Summarise the design"})
    task_id = made.json()["id"]  # no worker: it stays queued, the stream stays idle
    url = f"ws://{host}/v1/tasks/{task_id}/stream?after=1"
    async with connect(url) as ws:
        sse = asyncio.create_task(read_sse(http, f"/v1/tasks/{task_id}/events"))
        await asyncio.sleep(3.5)  # keep-alive 1 s: an idle stream says so every 1-2 s
        app.state.going_away()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1001
        assert ws.close_reason == "server going away; resume with after=1"
    read = await asyncio.wait_for(sse, 5)
    assert [e["type"] for e in read.events] == ["task.created"]
    assert read.comments >= 2  # keep-alives while nothing happened
    assert read.control == [("reconnect", {"reason": "server going away", "after": 1})]


async def test_bad_stream_requests(http: httpx.AsyncClient, host: str) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    sse = await http.get(f"/v1/tasks/{unknown}/events", headers={"Accept": "text/event-stream"})
    assert sse.status_code == 404
    assert sse.headers["content-type"] == "application/problem+json"
    assert sse.json()["detail"] == f"task {unknown} does not exist"
    for url in (f"/v1/tasks/{unknown}/stream", "/v1/tasks/not-a-uuid/stream"):
        closed = await read_ws(f"ws://{host}{url}")
        assert closed.code == 4404
        assert "does not exist" in closed.reason
    task_id = (await http.post("/v1/tasks", json={"input": "hello"})).json()["id"]
    for after in ("-1", "abc", "1.5"):
        closed = await read_ws(f"ws://{host}/v1/tasks/{task_id}/stream?after={after}")
        assert closed.code == 4400, after
        got = await http.get(
            f"/v1/tasks/{task_id}/events",
            params={"after": after},
            headers={"Accept": "text/event-stream"},
        )
        assert got.status_code == 422, after
        assert got.json()["errors"][0]["location"] == "query.after"
    bad_id = await http.get(
        f"/v1/tasks/{task_id}/events",
        headers={"Accept": "text/event-stream", "Last-Event-ID": "x1"},
    )
    assert bad_id.status_code == 422
    assert "Last-Event-ID must be an event seq" in bad_id.json()["detail"]


async def test_multiplexed_socket_protocol(
    http: httpx.AsyncClient, host: str, worker: Worker, fake: FakeOpenAI
) -> None:
    conversation = (await http.post("/v1/conversations", json={"title": "ws"})).json()["id"]
    async with connect(f"ws://{host}/v1/ws") as ws:
        # Bad frames get error frames and the connection stays open.
        for raw, code, message in [
            ("{not json", "invalid_json", "not JSON"),
            ('{"type": "dance"}', "invalid_frame", "type must be one of"),
            ('["subscribe"]', "invalid_frame", "type must be one of"),
            ('{"type": "subscribe", "id": "s0"}', "invalid_frame",
             "give exactly one of task_id and conversation_id"),
            ('{"type": "subscribe", "task_id": "nope", "id": "s1"}', "invalid_frame", "task_id"),
            ('{"type": "subscribe", "task_id": "00000000-0000-4000-8000-000000000000", '
             '"after": -1}', "invalid_frame", "after"),
            (json.dumps({"type": "send_message", "conversation_id": conversation,
                         "content": "x", "owner": "me"}), "invalid_frame", "owner"),
        ]:  # fmt: skip
            await ws.send(raw)
            frame = await next_frame(ws)
            assert (frame["type"], frame["code"]) == ("error", code), (raw, frame)
            assert message in frame["message"], (raw, frame)
        await ws.send(json.dumps({"type": "send_message", "conversation_id": conversation,
                                  "content": "   ", "id": "empty"}))  # fmt: skip
        assert await next_frame(ws) == {"type": "error", "id": "empty", "code": "invalid_input",
                                        "message": "input must not be empty"}  # fmt: skip
        await ws.send(json.dumps({"type": "ping", "id": "p1"}))
        assert await next_frame(ws) == {"type": "pong", "id": "p1"}
        unknown = "00000000-0000-4000-8000-000000000000"
        await ws.send(json.dumps({"type": "subscribe", "task_id": unknown, "id": "s2"}))
        assert await next_frame(ws) == {
            "type": "error", "id": "s2", "code": "not_found",
            "message": f"task {unknown} does not exist",
        }  # fmt: skip

        # Subscribe to the conversation, then post into it: the new task's events come.
        await ws.send(json.dumps({"type": "subscribe", "conversation_id": conversation, "id": "c"}))
        assert await next_frame(ws) == {"type": "subscribed", "conversation_id": conversation,
                                        "id": "c"}  # fmt: skip
        await ws.send(json.dumps({"type": "subscribe", "conversation_id": conversation}))
        assert (await next_frame(ws))["code"] == "already_subscribed"
        post = {"type": "send_message", "conversation_id": conversation,
                "content": "Write a haiku about queues", "id": "m1"}  # fmt: skip
        await ws.send(json.dumps(post))
        # Every event arrives twice, once per subscription (a task subscription beside
        # the conversation's follows): the first and the second arrivals each make the
        # whole, ordered stream.
        first: list[dict[str, Any]] = []
        second: list[dict[str, Any]] = []
        while (frame := await next_frame(ws))["type"] != "message_accepted":
            assert frame["type"] == "event"
            first.append(frame["event"])  # the conversation's events may come first
        assert frame["id"] == "m1"
        assert frame["conversation_id"] == conversation
        task_id = frame["task_id"]
        await ws.send(json.dumps({"type": "subscribe", "task_id": task_id, "id": "t"}))
        ended = False

        def done(events: list[dict[str, Any]]) -> bool:
            return bool(events) and events[-1]["type"] in TERMINAL

        async with asyncio.timeout(30):
            while not (ended and done(first) and done(second)):
                frame = json.loads(await ws.recv())
                if frame["type"] == "event":
                    event = frame["event"]
                    assert event["task_id"] == task_id
                    seen = {e["seq"] for e in first}
                    (second if event["seq"] in seen else first).append(event)
                elif frame["type"] == "subscribed":
                    assert frame == {"type": "subscribed", "task_id": task_id, "id": "t"}
                elif frame["type"] == "unsubscribed":
                    assert frame == {"type": "unsubscribed", "task_id": task_id,
                                     "reason": "finished"}  # fmt: skip
                    ended = True
        task = (await http.get(f"/v1/tasks/{task_id}")).json()
        check_complete(first, task)
        assert second == first
        await ws.send(json.dumps({"type": "unsubscribe", "conversation_id": conversation,
                                  "id": "u"}))  # fmt: skip
        assert await next_frame(ws, "unsubscribed") == {
            "type": "unsubscribed",
            "conversation_id": conversation,
            "id": "u",
        }
        await ws.send(json.dumps({"type": "unsubscribe", "task_id": task_id, "id": "u2"}))
        assert (await next_frame(ws))["code"] == "not_found"


async def test_subscriptions_per_connection_are_capped(http: httpx.AsyncClient, host: str) -> None:
    ids = [
        (await http.post("/v1/tasks", json={"input": f"task {i}"})).json()["id"] for i in range(4)
    ]
    async with connect(f"ws://{host}/v1/ws") as ws:
        for task_id in ids[:3]:
            await ws.send(json.dumps({"type": "subscribe", "task_id": task_id}))
            assert (await next_frame(ws, "subscribed"))["task_id"] == task_id
        await ws.send(json.dumps({"type": "subscribe", "task_id": ids[3], "id": "four"}))
        assert await next_frame(ws, "error") == {
            "type": "error", "id": "four", "code": "too_many_subscriptions",
            "message": "at most 3 at a time",
        }  # fmt: skip
        await ws.send(json.dumps({"type": "unsubscribe", "task_id": ids[0]}))
        assert (await next_frame(ws, "unsubscribed"))["task_id"] == ids[0]
        await ws.send(json.dumps({"type": "subscribe", "task_id": ids[3]}))
        assert (await next_frame(ws, "subscribed"))["task_id"] == ids[3]
