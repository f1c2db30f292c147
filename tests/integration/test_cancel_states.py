"""Cancelling through the API on Postgres: a cancelled task's unfinished steps end
``cancelled`` (and a live subscriber sees each one end), a finished task's cancel is a
409 problem+json naming how it ended, and OpenAPI says so."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from arq.worker import Worker
from fastapi import FastAPI
from pydantic import SecretStr

from chatsys.infra.settings import LLMSettings, Settings
from tests.fakes.openai_compat import FakeOpenAI, RunningFake, run_fake_openai
from tests.integration.test_task_pipeline import events, wait_for
from tests.streams import read_sse, serve
from tests.support import eventually

MODEL = "openai/gpt-4o-mini"
AGENTS = ["developer", "reviewer"]  # steps developer_1, reviewer_2, then answer


@pytest.fixture
def llm_server() -> Iterator[RunningFake]:
    with run_fake_openai() as running:
        yield running


@pytest.fixture
def fake(llm_server: RunningFake) -> FakeOpenAI:
    return llm_server.fake


@pytest.fixture
def settings(settings: Settings, llm_server: RunningFake) -> Settings:
    settings.llm = LLMSettings(
        CHATSYS_MODEL=MODEL,
        api_base=llm_server.base_url,
        api_key=SecretStr("sk-test-key"),
        num_retries=0,
        timeout=30,
        cooldown_seconds=0,
    )
    return settings


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A real HTTP client on a real server: for the live stream."""
    async with serve(app) as host, httpx.AsyncClient(base_url=f"http://{host}") as client:
        yield client


def statuses(task: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["key"], s["status"]) for s in task["steps"]]


async def test_cancel_while_a_step_runs_ends_it_and_the_pending_ones_cancelled(
    client: httpx.AsyncClient, http: httpx.AsyncClient, worker: Worker, fake: FakeOpenAI
) -> None:
    fake.latency = 0.5
    made = await client.post("/v1/tasks", json={"input": "Write a slugifier", "agents": AGENTS})
    task_id = made.json()["id"]
    await eventually(lambda: fake.count(step="developer_1") == 1, within=10)
    fake.latency = 60.0  # developer_1's answer is on its way; reviewer_2's is held

    async def reviewing() -> list[tuple[str, str]]:
        now = statuses((await client.get(f"/v1/tasks/{task_id}")).json())
        assert now[:2] == [("developer_1", "succeeded"), ("reviewer_2", "running")], now
        return now

    assert (await eventually(reviewing, within=10))[2] == ("answer", "pending")
    live = asyncio.create_task(read_sse(http, f"/v1/tasks/{task_id}/events"))
    await eventually(lambda: fake.count(step="reviewer_2") == 1, within=5)

    accepted = await client.post(f"/v1/tasks/{task_id}/cancel")

    assert accepted.status_code == 200
    assert accepted.json()["cancel_requested"] is True
    task = await wait_for(client, task_id, within=5)
    assert task["status"] == "cancelled"
    assert statuses(task) == [
        ("developer_1", "succeeded"),
        ("reviewer_2", "cancelled"),
        ("answer", "cancelled"),
    ]
    assert all(s["finished_at"] for s in task["steps"])
    assert task["steps"][0]["output"]  # what was done is kept
    assert task["result"] is None
    assert task["usage"]["total_tokens"] == task["steps"][0]["usage"]["total_tokens"] > 0
    tail = [(e["type"], e["data"]) for e in (await events(client, task_id))[-3:]]
    assert tail == [
        ("step.cancelled", {"step": "reviewer_2", "agent": "reviewer", "attempt": 1,
                            "was": "running"}),
        ("step.cancelled", {"step": "answer", "agent": "assistant", "attempt": 0,
                            "was": "pending"}),
        ("task.cancelled", {"reason": "cancel requested"}),
    ]  # fmt: skip
    seen = await asyncio.wait_for(live, 10)  # the subscriber saw them end, live
    assert [e["type"] for e in seen.events[-3:]] == [t for t, _ in tail]

    again = await client.post(f"/v1/tasks/{task_id}/cancel")
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json() == {
        "type": "urn:chatsys:problem:conflict",
        "title": "Conflict",
        "status": 409,
        "detail": f"task {task_id} is already cancelled",
        "instance": f"/v1/tasks/{task_id}/cancel",
        "request_id": again.headers["x-request-id"],
    }


async def test_cancelling_a_succeeded_task_is_a_409_and_changes_nothing(
    client: httpx.AsyncClient, worker: Worker, fake: FakeOpenAI
) -> None:
    made = await client.post("/v1/tasks", json={"input": "hi", "agents": ["assistant"]})
    task = await wait_for(client, made.json()["id"])
    assert task["status"] == "succeeded", task["error"]
    log = await events(client, task["id"])

    refused = await client.post(f"/v1/tasks/{task['id']}/cancel")

    assert refused.status_code == 409
    assert refused.json()["detail"] == f"task {task['id']} is already succeeded"
    after = (await client.get(f"/v1/tasks/{task['id']}")).json()
    assert (after["status"], after["cancel_requested"]) == ("succeeded", False)
    assert statuses(after) == [("assistant_1", "succeeded")]
    assert await events(client, task["id"]) == log


async def test_the_cancel_route_documents_its_409(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    answers = spec["paths"]["/v1/tasks/{task_id}/cancel"]["post"]["responses"]
    assert "409" in answers
    problem = answers["409"]["content"]["application/problem+json"]
    assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}
    schema = spec["components"]["schemas"]["Problem"]
    assert schema["required"] == ["type", "title", "status", "detail"]
    assert "already finished" in answers["409"]["description"]
