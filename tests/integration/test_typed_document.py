"""What the server sends is what its OpenAPI document says, checked on real runs: tasks of
several intents through LiteLLM and the fake provider (tool calls, a retried and
degraded step, an approval, a failure, a cancel, a re-queue), every answer against its
operation's documented schema, every event of the log (JSON page, SSE, WebSocket) against
``TaskEvent``, every ``/v1/ws`` frame against ``WsServerFrame``. The validators refuse
keys the document does not name, so a payload that gains one fails here."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from arq.worker import Worker
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import text
from websockets.asyncio.client import ClientConnection, connect

from chatsys.bootstrap import Resources, build_worker
from chatsys.bootstrap.components import webhook_callbacks
from chatsys.domain.tasks.model import EventType
from chatsys.domain.tasks.recovery import RequeueStale
from chatsys.domain.tasks.submission import Dispatcher
from chatsys.infra.clock import SystemClock
from chatsys.infra.queue import ArqJobQueue
from chatsys.infra.settings import LLMSettings, McpSettings, Settings, StreamSettings
from tests.document import JSON, Document
from tests.fakes.openai_compat import FakeOpenAI, RunningFake, run_fake_openai
from tests.streams import read_sse, read_ws, serve
from tests.support import GiveUp, eventually, stop_worker

MODEL = "openai/gpt-4o-mini"
TERMINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture
def llm_server() -> Iterator[RunningFake]:
    with run_fake_openai() as running:
        yield running


@pytest.fixture
def fake(llm_server: RunningFake) -> FakeOpenAI:
    llm_server.fake.chunk_delay = 0.002
    return llm_server.fake


@pytest.fixture
def settings(settings: Settings, llm_server: RunningFake, tmp_path: Path) -> Settings:
    settings.llm = LLMSettings(
        CHATSYS_MODEL=MODEL,
        api_base=llm_server.base_url,
        api_key=SecretStr("sk-test-key"),
        num_retries=0,
        timeout=10,
        step_backoff=0.01,
        step_attempts=2,
        cooldown_seconds=0,
    )
    settings.mcp = McpSettings(
        workspace_root=tmp_path / "workspaces",
        workspace_policy="ask",  # the operator's file tools wait for an approval
        sync_interval=0,
        approval_timeout=60,
        approval_poll_interval=0.05,
    )
    settings.stream = StreamSettings(keepalive=1.0, buffer=256, close_timeout=5)
    return settings


@pytest.fixture
async def host(app: FastAPI) -> AsyncIterator[str]:
    async with serve(app) as where:
        yield where


@pytest.fixture
async def http(host: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://{host}", timeout=30) as client:
        yield client


@pytest.fixture
def doc(app: FastAPI) -> Document:
    return Document(app.openapi())


class Api:
    """HTTP calls whose answers are checked against the operation's documented schema."""

    def __init__(self, http: httpx.AsyncClient, doc: Document) -> None:
        self.http = http
        self.doc = doc
        self.answers = 0

    async def call(
        self, method: str, route: str, status: int, /, path: str | None = None, **kw: Any
    ) -> Any:
        answer = await self.http.request(method, path or route, **kw)
        assert answer.status_code == status, (method, path or route, answer.text)
        body = answer.json()
        try:
            self.doc.check(self.doc.answer_schema(method, route, status), body)
        except AssertionError as exc:
            raise AssertionError(f"{method} {route} {status}: {exc}") from None
        self.answers += 1
        return body

    async def task(self, task_id: str) -> Any:
        return await self.call("GET", "/v1/tasks/{task_id}", 200, f"/v1/tasks/{task_id}")

    async def wait(self, task_id: str, *, status: tuple[str, ...] = TERMINAL) -> Any:
        async def there() -> Any:
            task = await self.task(task_id)
            assert task["status"] in status, f"task {task['status']}, not {status}"
            return task

        return await eventually(there, within=60)

    async def submit(self, body: dict[str, Any]) -> str:
        made = await self.call("POST", "/v1/tasks", 202, json=body)
        task_id: str = made["id"]
        return task_id

    async def events(self, task_id: str) -> list[dict[str, Any]]:
        route = "/v1/tasks/{task_id}/events"
        page = await self.call(
            "GET", route, 200, f"/v1/tasks/{task_id}/events", params={"limit": 1000}
        )
        assert page["done"]
        items: list[dict[str, Any]] = page["items"]
        return items


class Frames:
    """Every frame the server sends on one /v1/ws connection, each checked as it comes."""

    def __init__(self, ws: ClientConnection, doc: Document) -> None:
        self.ws = ws
        self.doc = doc
        self.got: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            frame = json.loads(raw)
            if frame.get("type") == "event":  # its event first: the clearer error
                self.doc.check(self.doc.component("TaskEvent"), frame["event"])
            self.doc.check(self.doc.component("WsServerFrame"), frame)
            self.got.append(frame)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def answer(self, **match: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            if self._reader.done():
                raise GiveUp(f"the reader stopped: {self._reader.exception()!r}")
            return next((f for f in self.got if match.items() <= f.items()), None)

        frame: dict[str, Any] = await eventually(found, within=30, message=f"no frame {match}")
        return frame


async def test_answers_events_and_frames_are_what_the_document_says(
    http: httpx.AsyncClient, host: str, worker: Worker, fake: FakeOpenAI, doc: Document
) -> None:
    api = Api(http, doc)
    pace = fake.chunk_delay

    def script(tool: str | None = None, arguments: dict[str, Any] | None = None) -> None:
        fake.reset()
        fake.chunk_delay = pace
        if tool is not None:
            fake.script_tool_call(tool, arguments or {})

    analysed = await api.call("POST", "/v1/analyze", 200, json={"text": "fix the KeyError in "
                              "app/main.py with pandas 2.1"})  # fmt: skip
    assert analysed["intent"] == "debugging"
    agents = await api.call("GET", "/v1/agents", 200)
    assert {a["role"] for a in agents["items"]} >= {"developer", "operator"}
    conversation = await api.call("POST", "/v1/conversations", 201, json={"title": "typed"})

    tasks: dict[str, str] = {}
    async with connect(f"ws://{host}/v1/ws") as ws:
        frames = Frames(ws, doc)
        # The examples the document gives for client frames pass the server's parser:
        # each gets its answer, none an invalid_json or invalid_frame error.
        for i, example in enumerate(doc.schemas["WsClientFrame"]["examples"]):
            await frames.send({**example, "id": f"example-{i}"})
            got = await frames.answer(id=f"example-{i}")
            assert got.get("code") not in ("invalid_json", "invalid_frame"), (example, got)
        await ws.send("{not json")
        await frames.answer(type="error", code="invalid_json")
        await frames.send({"type": "subscribe", "conversation_id": conversation["id"], "id": "c"})
        await frames.answer(type="subscribed", id="c")

        # 1. A chat message over the socket (general chat).
        await frames.send({"type": "send_message", "conversation_id": conversation["id"],
                           "content": "hello there", "id": "m"})  # fmt: skip
        accepted = await frames.answer(type="message_accepted", id="m")
        tasks["chat"] = accepted["task_id"]
        await frames.send({"type": "subscribe", "task_id": tasks["chat"], "id": "t"})
        await frames.answer(type="unsubscribed", task_id=tasks["chat"], reason="finished")
        # 2. Code generation: the default team.
        tasks["code"] = await api.submit({"input": "Write a Python function that slugifies a "
                                          "title", "metadata": {"ticket": "T-1"}})  # fmt: skip
        await api.wait(tasks["code"])
        # 3. Tool calls (a research question).
        script("chatsys__calculate", {"expression": "6 * 7"})
        tasks["tools"] = await api.submit({"input": "What is 6 times 7?"})
        await api.wait(tasks["tools"])
        # 4. A step retried, then failed for good: the plan degrades.
        script()
        fake.fail_step("research", status=500)
        tasks["degraded"] = await api.submit({"input": "What is the difference between TCP "
                                              "and UDP?"})  # fmt: skip
        await api.wait(tasks["degraded"])
        # 5. Every call fails: the task fails.
        script()
        fake.fail_model("gpt-4o-mini", status=503)
        tasks["failed"] = await api.submit({"input": "Explain what a B-tree is"})
        await api.wait(tasks["failed"])
        # 6. A file tool that needs an approval (the operator, on its own).
        script("workspace__list_dir", {"path": "."})
        tasks["approval"] = await api.submit({"input": "List the files in the workspace",
                                              "agents": ["operator"]})  # fmt: skip
        await api.wait(tasks["approval"], status=("awaiting_approval",))
        route = "/v1/tasks/{task_id}/approvals"
        pending = await api.call("GET", route, 200, f"/v1/tasks/{tasks['approval']}/approvals")
        [approval] = pending["items"]
        await api.call("POST", route + "/{approval_id}", 200,
                       f"/v1/tasks/{tasks['approval']}/approvals/{approval['id']}",
                       json={"decision": "approve"})  # fmt: skip
        await api.wait(tasks["approval"])
        # 7. Cancelled while its step waits on the model.
        script()
        fake.hang_next(1)
        tasks["cancelled"] = await api.submit({"input": "Write a haiku about queues",
                                               "agents": ["writer"]})  # fmt: skip
        await api.wait(tasks["cancelled"], status=("running",))
        await eventually(lambda: fake.count() >= 1, within=30)  # the step is under way
        route = "/v1/tasks/{task_id}/cancel"
        await api.call("POST", route, 200, f"/v1/tasks/{tasks['cancelled']}/cancel")
        await api.wait(tasks["cancelled"])

        await frames.send({"type": "unsubscribe", "conversation_id": conversation["id"],
                           "id": "u"})  # fmt: skip
        await frames.answer(type="unsubscribed", id="u")
        await frames.send({"type": "ping", "id": "p"})
        await frames.answer(type="pong", id="p")
    kinds = {f["type"] for f in frames.got}
    assert kinds == {"subscribed", "event", "unsubscribed", "message_accepted", "pong", "error"}

    outcomes = {name: (await api.task(task_id))["status"] for name, task_id in tasks.items()}
    assert outcomes == {"chat": "succeeded", "code": "succeeded", "tools": "succeeded",
                        "degraded": "succeeded", "failed": "failed",
                        "approval": "succeeded", "cancelled": "cancelled"}  # fmt: skip
    await api.call("GET", "/v1/tasks", 200, params={"limit": 100})
    await api.call("GET", "/v1/tasks", 200, params={"status": "failed"})

    seen: set[str] = set()
    event = doc.component("TaskEvent")
    for name, task_id in tasks.items():
        page = await api.events(task_id)  # checked as the page's items
        sse = await read_sse(http, f"/v1/tasks/{task_id}/events")
        assert [e["seq"] for e in sse.events] == [e["seq"] for e in page]
        for item in sse.events:
            doc.check(event, item)
        seen |= {e["type"] for e in page}
        if name == "tools":
            stream = await read_ws(f"ws://{host}/v1/tasks/{task_id}/stream")
            assert len(stream.events) == len(page)
            for item in stream.events:
                doc.check(event, item)
    # Every event type but the re-queue (the next test) came, each checked.
    assert seen == {t.value for t in EventType} - {EventType.TASK_REQUEUED}
    assert api.answers > 40


async def test_a_requeued_task_and_a_going_away_stream_are_what_the_document_says(
    app: FastAPI, http: httpx.AsyncClient, settings: Settings, fake: FakeOpenAI, doc: Document
) -> None:
    api = Api(http, doc)
    task_id = await api.submit({"input": "hello there"})
    resources = await Resources.open(settings, role="test")
    try:  # a worker claims it and dies; the sweeper puts it back in the queue
        async with resources.unit_of_work() as uow:
            assert await uow.tasks.claim(UUID(task_id), "dead-worker", stale_after=10)
            await uow.commit()
        async with resources.engine.begin() as conn:
            lapsed = datetime.now(UTC) - timedelta(minutes=1)
            await conn.execute(text("UPDATE tasks SET heartbeat_at = :at WHERE id = :id"),
                               {"at": lapsed, "id": task_id})  # fmt: skip
        queue = ArqJobQueue(resources.redis, queue_name=settings.worker.queue_name)
        sweeper = RequeueStale(resources.unit_of_work, Dispatcher(resources.unit_of_work, queue),
                               SystemClock(), callbacks=webhook_callbacks(resources))  # fmt: skip
        assert [str(t) for t in await sweeper.execute()] == [task_id]
    finally:
        await resources.close()
    running = build_worker(settings)
    running._handle_signals = False
    job = asyncio.create_task(running.async_run())
    try:
        assert (await api.wait(task_id))["status"] == "succeeded"
    finally:
        await stop_worker(running, job)
    types = [e["type"] for e in await api.events(task_id)]
    assert types.count("task.requeued") == 1
    assert types.count("task.started") == 1  # the dead worker's claim wrote none

    # A server going away ends an SSE stream with a `reconnect` message (StreamControl).
    queued = await api.submit({"input": "hello again"})  # no worker: it stays queued
    reading = asyncio.create_task(read_sse(http, f"/v1/tasks/{queued}/events"))
    with contextlib.suppress(AssertionError):
        await eventually(reading.done, within=1.5)  # it idles meanwhile
    app.state.going_away()
    sse = await asyncio.wait_for(reading, 10)
    assert [kind for kind, _ in sse.control] == ["reconnect"]
    for _, body in sse.control:
        doc.check(doc.component("StreamControl"), body)
    for item in sse.events:
        doc.check(doc.component("TaskEvent"), item)


async def test_request_bodies_made_of_the_examples_are_accepted(
    client: httpx.AsyncClient, doc: Document
) -> None:
    """Each JSON body made of the document's examples (and the smallest valid values of
    required fields) is not refused as invalid by a live server. Not sent: MCP servers
    (the example starts a process) and webhooks (the example's host is resolved, and
    tests have no network)."""
    sent = 0
    for path, operations in doc.spec["paths"].items():
        if path.startswith(("/v1/mcp/", "/v1/webhooks")):
            continue
        for method, operation in operations.items():
            body_doc = operation.get("requestBody", {}).get("content", {}).get(JSON)
            if body_doc is None:
                continue
            body = doc.exemplary(body_doc["schema"])
            url = path.replace("{", "").replace("}", "")  # placeholder ids: a 404 is fine
            for name in ("task_id", "conversation_id", "approval_id", "delivery_id", "key_id"):
                url = url.replace(name, "00000000-0000-4000-8000-000000000001")
            answer = await client.request(method, url, json=body)
            where = (method, path, body, answer.text)
            assert answer.status_code not in (415, 422), where
            assert answer.status_code < 500, where
            sent += 1
    assert sent >= 5
