"""The pipeline through LiteLLM to a real (fake) OpenAI-compatible HTTP server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from arq.worker import Worker
from pydantic import SecretStr

from chatsys.infra.settings import LLMSettings, Settings
from tests.fakes.openai_compat import FakeOpenAI, RunningFake, run_fake_openai
from tests.integration.test_task_pipeline import events, wait_for
from tests.support import eventually

MODEL = "openai/gpt-4o-mini"  # a model LiteLLM knows the price of, served by the fake


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
        num_retries=2,
        timeout=5,
        step_backoff=0.01,
        step_attempts=2,
        cooldown_seconds=0,
    )
    return settings


async def submit(client: httpx.AsyncClient, text: str) -> str:
    made = await client.post("/v1/tasks", json={"input": text})
    assert made.status_code == 202, made.text
    task_id: str = made.json()["id"]
    return task_id


async def test_a_task_runs_through_the_provider_with_usage_and_cost(
    client: httpx.AsyncClient, worker: Worker, fake: FakeOpenAI
) -> None:
    task = await wait_for(client, await submit(client, "Write a function that adds two numbers"))
    assert task["status"] == "succeeded", task["error"]
    keys = [s["key"] for s in task["steps"]]
    assert fake.count() == len(keys)
    assert all(fake.count(step=k) == 1 for k in keys)
    assert all(c.authorization == "Bearer sk-test-key" for c in fake.calls)
    assert all(c.stream for c in fake.calls)
    assert task["result"]["text"] == "[fake:gpt-4o-mini] step answer done."
    assert task["usage"]["prompt_tokens"] > 0
    assert task["usage"]["cost_usd"] > 0  # priced by LiteLLM's cost map
    log = await events(client, task["id"])
    deltas = [e for e in log if e["type"] == "message.delta" and e["data"]["step"] == "answer"]
    assert "".join(e["data"]["text"] for e in deltas) == task["result"]["text"]


async def test_injected_500s_are_retried(
    client: httpx.AsyncClient, worker: Worker, fake: FakeOpenAI
) -> None:
    fake.fail_next(2, status=500)
    task = await wait_for(client, await submit(client, "hello there"))
    assert task["status"] == "succeeded", task["error"]
    assert fake.count() == 3  # two failures retried by the Router, then the answer


async def test_a_permanently_failing_model_fails_the_task_cleanly(
    client: httpx.AsyncClient, worker: Worker, fake: FakeOpenAI
) -> None:
    fake.fail_model("gpt-4o-mini", status=503)
    task = await wait_for(client, await submit(client, "Explain what a B-tree is"), within=60)
    assert task["status"] == "failed"
    message = task["error"]["message"]
    assert "injected failure (503)" in message
    assert "fallback also failed" in message
    assert "Traceback" not in message
    types = [e["type"] for e in await events(client, task["id"])]
    assert "plan.degraded" in types
    assert types[-1] == "task.failed"


async def test_a_failing_step_degrades_to_one_assistant_step(
    client: httpx.AsyncClient, worker: Worker, fake: FakeOpenAI
) -> None:
    fake.fail_step("research", status=400)  # not retryable
    task = await wait_for(
        client, await submit(client, "What is the difference between TCP and UDP?")
    )
    assert task["status"] == "succeeded", task["error"]
    assert task["plan"]["shape"] == "degraded"
    assert task["result"]["step"] == "fallback"
    failed = next(s for s in task["steps"] if s["key"] == "research")
    assert failed["status"] == "failed"
    assert fake.count(step="research") == 1  # a 400 is not retried


async def test_tool_calls_round_trip_through_the_provider(
    client: httpx.AsyncClient, worker: Worker, fake: FakeOpenAI
) -> None:
    fake.script_tool_call("chatsys__calculate", {"expression": "6 * 7"})
    task = await wait_for(client, await submit(client, "hi"))
    assert task["status"] == "succeeded", task["error"]
    log = await events(client, task["id"])
    done = next(e for e in log if e["type"] == "tool.call.completed")
    assert done["data"]["tool"] == "chatsys__calculate"
    assert '"value": 42.0' in done["data"]["result"]
    assert '"value": 42.0' in task["result"]["text"]


async def test_cancel_during_a_run_stops_it_within_two_seconds(
    client: httpx.AsyncClient, worker: Worker, fake: FakeOpenAI
) -> None:
    fake.latency = 1.0
    task_id = await submit(client, "Implement a distributed rate limiter across all services")

    async def running() -> bool:
        status = (await client.get(f"/v1/tasks/{task_id}")).json()["status"]
        assert status == "running", f"task {status}"
        return True

    await eventually(running, within=10)
    await asyncio.sleep(0.3)  # a model call is under way
    started = time.perf_counter()
    answer = await client.post(f"/v1/tasks/{task_id}/cancel")
    assert answer.status_code == 200
    task = await wait_for(client, task_id, within=5)
    elapsed = time.perf_counter() - started
    assert task["status"] == "cancelled"
    assert elapsed < 2.0
    calls = fake.count()
    await asyncio.sleep(2.5)
    assert fake.count() == calls  # no further LLM calls
    assert (await events(client, task_id))[-1]["type"] == "task.cancelled"


@pytest.fixture
def llm_nlu_settings(settings: Settings) -> Settings:
    settings.features.llm_nlu = True
    return settings


async def test_the_llm_analyser_decides_the_intent_when_enabled(
    llm_nlu_settings: Settings, client: httpx.AsyncClient, worker: Worker, fake: FakeOpenAI
) -> None:
    fake.queue_reply('{"intent": "research_question", "confidence": 0.9, "complexity": "low"}')
    task = await wait_for(client, await submit(client, "hello there, tell me about B-trees"))
    assert task["analysis"]["analyzer"] == "llm"
    assert task["analysis"]["intent"] == "research_question"
    assert task["plan"]["shape"] == "research_question"
    assert fake.calls[0].messages[0]["role"] == "system"


@pytest.fixture
def impatient_settings(settings: Settings) -> Settings:
    settings.llm.timeout = 0.5
    settings.llm.num_retries = 0
    settings.llm.step_attempts = 1
    return settings


async def test_a_provider_that_times_out_fails_the_task_with_its_message(
    impatient_settings: Settings, client: httpx.AsyncClient, worker: Worker, fake: FakeOpenAI
) -> None:
    fake.hang_next(10)
    task = await wait_for(client, await submit(client, "hello"), within=30)
    assert task["status"] == "failed"
    assert "Timeout" in task["error"]["message"]
    assert "Traceback" not in task["error"]["message"]


@pytest.fixture
def short_limit_settings(settings: Settings) -> Settings:
    settings.worker.task_timeout = 1.0
    return settings


async def test_a_task_over_its_time_limit_fails_instead_of_looping(
    short_limit_settings: Settings, client: httpx.AsyncClient, worker: Worker, fake: FakeOpenAI
) -> None:
    fake.latency = 3.0
    task = await wait_for(client, await submit(client, "hello"), within=20)
    assert task["status"] == "failed"
    assert task["error"]["type"] == "timeout"
    assert "longer than its limit of 1 s" in task["error"]["message"]
    types = [e["type"] for e in await events(client, task["id"])]
    assert types.count("task.started") == 1  # not handed back and run again
