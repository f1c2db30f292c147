"""Tool approvals through the whole pipeline (acceptance 5): a real worker, real Postgres
and Redis, the fake provider asking for a tool of a real MCP server (mcp-server-time
over stdio) whose policy is ``ask`` or ``deny``."""

from __future__ import annotations

import asyncio
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.worker import Worker
from pydantic import SecretStr

from chatsys.bootstrap import build_worker
from chatsys.infra.settings import LLMSettings, McpSettings, Settings, WebhookSettings
from tests.fakes.openai_compat import FakeOpenAI, RunningFake, run_fake_openai
from tests.integration.test_task_pipeline import events, wait_for
from tests.support import eventually, stop_worker

TIME_SERVER = shutil.which("mcp-server-time", path=str(Path(sys.executable).parent))
TOOL = "time__get_current_time"
ARGUMENTS = {"timezone": "Asia/Tokyo"}


@pytest.fixture
def policy() -> dict[str, Any]:
    return {"policy": "ask"}


@pytest.fixture
def approval_timeout() -> float:
    return 120.0


@pytest.fixture
def llm_server() -> Iterator[RunningFake]:
    with run_fake_openai() as running:
        yield running


@pytest.fixture
def settings(
    settings: Settings,
    tmp_path: Path,
    llm_server: RunningFake,
    policy: dict[str, Any],
    approval_timeout: float,
) -> Settings:
    settings.mcp = McpSettings(
        servers=[{"name": "time", "command": TIME_SERVER, **policy}],
        workspace_root=tmp_path / "workspaces",
        sync_interval=0,
        approval_timeout=approval_timeout,
        approval_poll_interval=0.05,
    )
    settings.llm = LLMSettings(
        CHATSYS_MODEL="openai/gpt-4o-mini",
        api_base=llm_server.base_url,
        api_key=SecretStr("sk-test"),
        num_retries=0,
        timeout=10,
        step_backoff=0.01,
        step_attempts=1,
    )
    settings.webhooks = WebhookSettings(allow_private_networks=True, retry_schedule=[0])
    return settings


@pytest.fixture
def fake(llm_server: RunningFake) -> FakeOpenAI:
    llm_server.fake.script_tool_call(TOOL, ARGUMENTS)
    return llm_server.fake


async def submit(client: httpx.AsyncClient, **options: Any) -> str:
    made = await client.post("/v1/tasks", json={"input": "hello there", **options})
    assert made.status_code == 202, made.text
    task_id: str = made.json()["id"]
    return task_id


async def wait_status(
    client: httpx.AsyncClient, task_id: str, status: str, *, within: float = 30
) -> dict[str, Any]:
    async def there() -> dict[str, Any]:
        task: dict[str, Any] = (await client.get(f"/v1/tasks/{task_id}")).json()
        assert task["status"] == status, f"task still {task['status']}, not {status}"
        return task

    return await eventually(there, within=within)


async def requested(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    return [e for e in await events(client, task_id) if e["type"] == "approval.requested"]


def tool_turn(fake: FakeOpenAI, index: int) -> str:
    turn = next(m for m in fake.calls[index].messages if m.get("role") == "tool")
    return str(turn["content"])


async def decide(
    client: httpx.AsyncClient, task_id: str, approval_id: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(f"/v1/tasks/{task_id}/approvals/{approval_id}", json=body)


async def test_ask_holds_the_task_until_approved_then_the_tool_result_reaches_the_model(
    client: httpx.AsyncClient, worker: Worker, fake: FakeOpenAI
) -> None:
    task_id = await submit(client)
    await wait_status(client, task_id, "awaiting_approval")
    await asyncio.sleep(0.5)  # it stays there: the tool has not run, the model waits
    assert (await client.get(f"/v1/tasks/{task_id}")).json()["status"] == "awaiting_approval"
    assert len(fake.calls) == 1
    assert TOOL in fake.calls[0].tool_names

    [asked] = await requested(client, task_id)
    data = asked["data"]
    assert data["tool"] == TOOL
    assert data["arguments"] == ARGUMENTS
    assert data["agent"] == "assistant"
    assert data["step"]
    assert data["expires_at"]
    listed = (await client.get(f"/v1/tasks/{task_id}/approvals")).json()["items"]
    assert [(a["id"], a["status"]) for a in listed] == [(data["approval_id"], "pending")]

    approved = await decide(client, task_id, data["approval_id"], {"decision": "approve"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["decided_by"] == "local"
    assert approved.json()["decided_at"] is not None

    task = await wait_for(client, task_id, within=60)
    assert task["status"] == "succeeded", task["error"]
    assert '"timezone": "Asia/Tokyo"' in tool_turn(fake, 1)  # the result, in the next request
    log = await events(client, task_id)
    kinds = [e["type"] for e in log]
    order = ["tool.call.started", "approval.requested", "approval.decided", "tool.call.completed"]
    assert [k for k in kinds if k in order] == order
    decided = next(e for e in log if e["type"] == "approval.decided")["data"]
    assert decided["status"] == "approved"
    completed = next(e for e in log if e["type"] == "tool.call.completed")["data"]
    assert completed["is_error"] is False

    again = await decide(client, task_id, data["approval_id"], {"decision": "deny"})
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"


async def test_deny_lets_the_agent_go_on_without_the_tool_result(
    client: httpx.AsyncClient, worker: Worker, fake: FakeOpenAI
) -> None:
    task_id = await submit(client, webhook_url="http://127.0.0.1:9/hooks")
    await wait_status(client, task_id, "awaiting_approval")
    [asked] = await requested(client, task_id)
    [hook] = (await client.get("/v1/webhook-deliveries", params={"task_id": task_id})).json()[
        "items"
    ]
    assert hook["event_type"] == "approval.requested"
    assert hook["payload"]["data"]["task"]["status"] == "awaiting_approval"
    denied = await decide(
        client,
        task_id,
        asked["data"]["approval_id"],
        {"decision": "deny", "reason": "not on a Friday"},
    )
    assert denied.status_code == 200, denied.text
    assert denied.json()["status"] == "denied"
    assert denied.json()["reason"] == "not on a Friday"

    task = await wait_for(client, task_id, within=60)
    assert task["status"] == "succeeded", task["error"]
    told = tool_turn(fake, 1)
    assert "denied by local: not on a Friday" in told
    assert "did not run" in told
    assert '"timezone"' not in told  # no tool result
    completed = next(e for e in await events(client, task_id) if e["type"] == "tool.call.completed")
    assert completed["data"]["is_error"] is True


async def test_bad_decisions_are_refused(
    client: httpx.AsyncClient, worker: Worker, fake: FakeOpenAI
) -> None:
    task_id = await submit(client)
    await wait_status(client, task_id, "awaiting_approval")
    [asked] = await requested(client, task_id)
    approval_id = asked["data"]["approval_id"]

    unknown = await decide(client, task_id, str(uuid.uuid4()), {"decision": "approve"})
    assert unknown.status_code == 404
    other_task = await decide(client, str(uuid.uuid4()), approval_id, {"decision": "approve"})
    assert other_task.status_code == 404
    assert (await client.get(f"/v1/tasks/{uuid.uuid4()}/approvals")).status_code == 404
    for body in (
        {},
        {"decision": "maybe"},
        {"decision": "approve", "by": "me"},
        {"decision": "deny", "reason": "x" * 1001},
    ):
        refused = await decide(client, task_id, approval_id, body)
        assert refused.status_code == 422, body
    not_an_id = await client.post(f"/v1/tasks/{task_id}/approvals/nope", json={"decision": "deny"})
    assert not_an_id.status_code == 422
    # none of that decided anything
    assert (await client.get(f"/v1/tasks/{task_id}")).json()["status"] == "awaiting_approval"

    cancelled = await client.post(f"/v1/tasks/{task_id}/cancel")
    assert cancelled.status_code == 200
    late = await decide(client, task_id, approval_id, {"decision": "approve"})
    assert late.status_code == 409  # cancel wins
    task = await wait_for(client, task_id, within=30)
    assert task["status"] == "cancelled"
    [approval] = (await client.get(f"/v1/tasks/{task_id}/approvals")).json()["items"]
    assert approval["status"] == "expired"
    assert "cancelled" in approval["reason"]
    kinds = [e["type"] for e in await events(client, task_id)]
    assert kinds[-2:] == ["approval.decided", "task.cancelled"]
    assert len(fake.calls) == 1  # the model was never asked again
    finished = await decide(client, task_id, approval_id, {"decision": "approve"})
    assert finished.status_code == 409


@pytest.mark.parametrize("approval_timeout", [1.0])
async def test_an_approval_nobody_decides_expires_and_the_step_goes_on_as_denied(
    client: httpx.AsyncClient, worker: Worker, fake: FakeOpenAI
) -> None:
    task_id = await submit(client)
    task = await wait_for(client, task_id, within=60)
    assert task["status"] == "succeeded", task["error"]
    [approval] = (await client.get(f"/v1/tasks/{task_id}/approvals")).json()["items"]
    assert approval["status"] == "expired"
    assert approval["decided_by"] is None
    assert "no decision by" in approval["reason"]
    told = tool_turn(fake, 1)
    assert "not approved in time" in told
    assert '"timezone"' not in told
    decided = next(e for e in await events(client, task_id) if e["type"] == "approval.decided")
    assert decided["data"]["status"] == "expired"
    late = await decide(client, task_id, approval["id"], {"decision": "approve"})
    assert late.status_code == 409


@pytest.mark.parametrize("policy", [{"policy": "deny"}])
async def test_a_denied_tool_is_not_offered_and_refused_if_called_anyway(
    client: httpx.AsyncClient, worker: Worker, fake: FakeOpenAI
) -> None:
    task_id = await submit(client)
    task = await wait_for(client, task_id, within=60)
    assert task["status"] == "succeeded", task["error"]
    assert not any(name.startswith("time__") for name in fake.calls[0].tool_names)
    assert "denied by policy" in tool_turn(fake, 1)  # the fake calls it all the same
    assert (await client.get(f"/v1/tasks/{task_id}/approvals")).json()["items"] == []
    tools = (await client.get("/v1/mcp/servers/time/tools")).json()["items"]
    assert {t["policy"] for t in tools} == {"deny"}


@pytest.fixture
async def spawn(settings: Settings) -> AsyncIterator[Any]:
    """Start workers on demand; each is stopped at the end (if the test did not)."""
    started: list[tuple[Worker, asyncio.Task[Any]]] = []

    def start() -> tuple[Worker, asyncio.Task[Any]]:
        running = build_worker(settings)
        running._handle_signals = False
        started.append((running, asyncio.create_task(running.async_run())))
        return started[-1]

    yield start
    for running, job in started:
        if not job.done():
            await stop_worker(running, job)


async def test_a_worker_stopping_mid_wait_hands_the_task_back_and_the_next_one_reuses_the_approval(
    client: httpx.AsyncClient, spawn: Any, fake: FakeOpenAI
) -> None:
    first, job = spawn()
    task_id = await submit(client)
    await wait_status(client, task_id, "awaiting_approval")
    [asked] = await requested(client, task_id)
    for running in list(first.tasks.values()):  # the worker shuts down mid-wait
        running.cancel()
    await stop_worker(first, job)
    assert (await client.get(f"/v1/tasks/{task_id}")).json()["status"] == "queued"
    [pending] = (await client.get(f"/v1/tasks/{task_id}/approvals")).json()["items"]
    assert pending["status"] == "pending"

    spawn()  # the step runs again, the model asks again: the same approval is waited on
    await wait_status(client, task_id, "awaiting_approval")
    await asyncio.sleep(0.3)
    # The step ran again (more than once if the stopping worker took the task back up
    # before it stopped), and each time the model asked the same: one approval, asked once.
    asked_again = len(fake.calls)
    assert asked_again >= 2
    assert not any(m.get("role") == "tool" for c in fake.calls for m in c.messages)
    assert len(await requested(client, task_id)) == 1
    approved = await decide(client, task_id, asked["data"]["approval_id"], {"decision": "approve"})
    assert approved.status_code == 200, approved.text
    task = await wait_for(client, task_id, within=60)
    assert task["status"] == "succeeded", task["error"]
    assert '"timezone": "Asia/Tokyo"' in tool_turn(fake, asked_again)
    assert len((await client.get(f"/v1/tasks/{task_id}/approvals")).json()["items"]) == 1
