"""MCP tools in the whole pipeline: API, worker, agents, model (acceptance 1 and 2), and
the /v1/mcp endpoints."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from arq.worker import Worker
from pydantic import SecretStr

from chatsys.infra.settings import LLMSettings, McpSettings, Settings
from tests.fakes.openai_compat import FakeOpenAI, RunningFake, run_fake_openai
from tests.integration.test_task_pipeline import events, wait_for
from tests.support import ROOT

TIME_SERVER = shutil.which("mcp-server-time", path=str(Path(sys.executable).parent))
FAKE_SERVER = {
    "name": "fake",
    "command": sys.executable,
    "args": ["-m", "tests.fakes.mcp_server"],
    "cwd": str(ROOT),
    "timeout": 2,
}


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    settings.mcp = McpSettings(
        servers=[{"name": "time", "command": TIME_SERVER}, FAKE_SERVER],
        workspace_root=tmp_path / "workspaces",
        sync_interval=0,
    )
    return settings


# -- acceptance 2: offline, end to end ------------------------------------------------


async def test_an_offline_task_reads_a_workspace_file_and_summarises_it(
    client: httpx.AsyncClient, worker: Worker, settings: Settings
) -> None:
    conversation = (await client.post("/v1/conversations", json={})).json()
    assert settings.mcp.workspace_root is not None
    folder = settings.mcp.workspace_root / conversation["id"]
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text(
        "Release 2.4 ships on Friday.\nThe migration needs a backup first.\nAsk Dana.\n"
    )
    made = await client.post(
        f"/v1/conversations/{conversation['id']}/messages",
        json={"content": "read notes.txt in the workspace and summarise it"},
    )
    assert made.status_code == 202, made.text
    task = await wait_for(client, made.json()["id"], within=60)
    assert task["status"] == "succeeded", task["error"]
    assert task["analysis"]["intent"] == "file_operation"
    assert [s["agent"] for s in task["steps"]] == ["operator"]
    log = await events(client, task["id"])
    started = next(e for e in log if e["type"] == "tool.call.started")
    assert started["data"]["tool"] == "workspace__read_file"
    assert started["data"]["arguments"] == {"path": "notes.txt"}
    done = next(e for e in log if e["type"] == "tool.call.completed")
    assert done["data"]["is_error"] is False
    assert "Release 2.4 ships on Friday." in done["data"]["result"]
    answer = task["result"]["text"]
    assert "offline model" in answer
    assert "3 non-empty lines" in answer
    assert "Release 2.4 ships on Friday." in answer


# -- acceptance 1: a provider model asks for an MCP tool -------------------------------


@pytest.fixture
def llm_server() -> Iterator[RunningFake]:
    with run_fake_openai() as running:
        yield running


@pytest.fixture
def provider_settings(settings: Settings, llm_server: RunningFake) -> Settings:
    settings.llm = LLMSettings(
        CHATSYS_MODEL="openai/gpt-4o-mini",
        api_base=llm_server.base_url,
        api_key=SecretStr("sk-test"),
        num_retries=0,
        timeout=10,
        step_backoff=0.01,
        step_attempts=1,
    )
    return settings


async def test_the_model_calls_an_mcp_tool_and_gets_the_result(
    provider_settings: Settings, client: httpx.AsyncClient, worker: Worker, llm_server: RunningFake
) -> None:
    fake: FakeOpenAI = llm_server.fake
    fake.script_tool_call("time__get_current_time", {"timezone": "Asia/Tokyo"})
    made = await client.post("/v1/tasks", json={"input": "hello there"})
    task = await wait_for(client, made.json()["id"], within=60)
    assert task["status"] == "succeeded", task["error"]
    offered = fake.calls[0]
    assert offered.tools
    second = fake.calls[1].messages
    tool_turn = next(m for m in second if m.get("role") == "tool")
    assert '"timezone": "Asia/Tokyo"' in tool_turn["content"]
    done = next(e for e in await events(client, task["id"]) if e["type"] == "tool.call.completed")
    assert done["data"]["tool"] == "time__get_current_time"
    assert "Asia/Tokyo" in done["data"]["result"]


async def test_bad_arguments_reach_the_model_as_the_tool_result(
    provider_settings: Settings, client: httpx.AsyncClient, worker: Worker, llm_server: RunningFake
) -> None:
    fake: FakeOpenAI = llm_server.fake
    fake.script_tool_call("time__get_current_time", {"timezone": 7})
    made = await client.post("/v1/tasks", json={"input": "hello there"})
    task = await wait_for(client, made.json()["id"], within=60)
    assert task["status"] == "succeeded", task["error"]
    tool_turn = next(m for m in fake.calls[1].messages if m.get("role") == "tool")
    assert "invalid arguments" in tool_turn["content"]
    assert "7 is not of type 'string'" in tool_turn["content"]


async def test_a_server_dying_mid_call_gives_the_step_an_error_and_the_task_goes_on(
    provider_settings: Settings, client: httpx.AsyncClient, worker: Worker, llm_server: RunningFake
) -> None:
    fake: FakeOpenAI = llm_server.fake
    fake.script_tool_call("fake__exit", {})
    made = await client.post("/v1/tasks", json={"input": "hello there"})
    task = await wait_for(client, made.json()["id"], within=60)
    assert task["status"] == "succeeded", task["error"]
    done = next(e for e in await events(client, task["id"]) if e["type"] == "tool.call.completed")
    assert done["data"]["is_error"] is True
    assert "stopped during the call" in done["data"]["result"]


async def test_a_path_escape_asked_by_the_model_is_refused(
    provider_settings: Settings, client: httpx.AsyncClient, worker: Worker, llm_server: RunningFake
) -> None:
    fake: FakeOpenAI = llm_server.fake
    fake.script_tool_call("workspace__read_file", {"path": "../../../../etc/passwd"})
    made = await client.post("/v1/tasks", json={"input": "hello", "agents": ["operator"]})
    task = await wait_for(client, made.json()["id"], within=60)
    assert task["status"] == "succeeded", task["error"]
    done = next(e for e in await events(client, task["id"]) if e["type"] == "tool.call.completed")
    assert done["data"]["is_error"] is True
    assert "refused: '..' is not allowed" in done["data"]["result"]
    assert "root:" not in done["data"]["result"]


# -- the API ------------------------------------------------------------------------


async def test_the_mcp_endpoints(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/v1/mcp/servers")).json()["items"]
    assert {s["name"] for s in listed} == {"time", "fake", "workspace"}
    assert all(s["state"] == "stopped" for s in listed)  # nothing starts until used

    tools = await client.get("/v1/mcp/servers/time/tools")
    assert tools.status_code == 200
    names = {t["qualified_name"] for t in tools.json()["items"]}
    assert "time__get_current_time" in names

    call = await client.post(
        "/v1/mcp/servers/time/tools/get_current_time/call",
        json={"arguments": {"timezone": "UTC"}},
    )
    assert call.status_code == 200
    assert call.json()["is_error"] is False
    assert '"timezone": "UTC"' in call.json()["content"]

    bad = await client.post(
        "/v1/mcp/servers/time/tools/get_current_time/call", json={"arguments": {}}
    )
    assert bad.json()["is_error"] is True

    for path in ("/v1/mcp/servers/nope/tools", "/v1/mcp/servers/time/tools/nope/call"):
        missing = await client.post(path, json={}) if "call" in path else await client.get(path)
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"

    made = await client.post(
        "/v1/mcp/servers", json={"name": "broken", "command": "no-such-command-anywhere"}
    )
    assert made.status_code == 201, made.text
    assert made.json()["state"] == "failed"
    assert "command not found" in made.json()["last_error"]
    assert made.headers["location"] == "/v1/mcp/servers/broken"
    again = await client.get("/v1/mcp/servers")
    broken = next(s for s in again.json()["items"] if s["name"] == "broken")
    assert broken["state"] == "failed"
    unavailable = await client.get("/v1/mcp/servers/broken/tools")
    assert unavailable.status_code == 503

    added = await client.post(
        "/v1/mcp/servers", json={**FAKE_SERVER, "name": "extra", "env": {"TOKEN": "secret"}}
    )
    assert added.json()["state"] == "ready"
    assert added.json()["definition"]["env"] == {"TOKEN": "***"}
    assert (await client.post("/v1/mcp/servers", json={**FAKE_SERVER})).status_code == 409
    assert (await client.delete("/v1/mcp/servers/time")).status_code == 409  # from settings
    assert (await client.delete("/v1/mcp/servers/extra")).status_code == 204
    assert (await client.delete("/v1/mcp/servers/extra")).status_code == 404
    refused = await client.post("/v1/mcp/servers", json={"name": "x y", "command": "a"})
    assert refused.status_code == 422

    wrote = await client.post(
        "/v1/mcp/servers/workspace/tools/write_file/call",
        json={"arguments": {"path": "a.txt", "content": "hi"}, "workspace": "debug"},
    )
    assert wrote.json()["is_error"] is False
    accepted = await client.post("/v1/mcp/servers/time/tools/get_current_time/accept")
    assert accepted.json()["status"] == "active"
