"""``chatsys mcp``: chatsys' API as MCP tools, over stdio and streamable HTTP, against a
real chatsys API served over HTTP: read by our MCP manager (text) and by the SDK's own
client (structured content, output schemas, the server's version)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from arq.worker import Worker
from fastapi import FastAPI
from mcp import Client, StdioServerParameters

from chatsys import __version__
from chatsys.agents.mcp.config import parse_server
from chatsys.agents.mcp.manager import McpManager
from chatsys.bootstrap import build_app
from chatsys.bootstrap.cli import create_key
from chatsys.domain.access.model import Role
from chatsys.infra.settings import AuthSettings, Settings
from tests.support import ROOT, chatsys, clean_env, eventually, free_port

TOOLS = {"submit_task", "get_task", "list_tasks", "wait_for_task"}


@asynccontextmanager
async def served(app: FastAPI, port: int) -> AsyncIterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, within=10, every=0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
async def api_url(app: FastAPI) -> AsyncIterator[str]:
    async with served(app, free_port()) as url:
        yield url


def bridge(*args: str, cwd: Path, **env: str) -> Client:
    """`chatsys mcp` over stdio, read by the SDK's client."""
    command = StdioServerParameters(
        command=sys.executable, args=["-m", "chatsys", "mcp", *args], env=clean_env(**env),
        cwd=str(cwd),
    )  # fmt: skip
    return Client(command, read_timeout_seconds=60)


async def listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def exercise(manager: McpManager, name: str) -> None:
    assert {t.name for t in await manager.tools(name)} == TOOLS
    made = await manager.call(name, "submit_task", {"input": "what is (2 + 3) * 4?"})
    assert not made.is_error, made.content
    task_id = json.loads(made.content)["id"]

    async def succeeded() -> dict[str, Any]:
        got: dict[str, Any] = json.loads(
            (await manager.call(name, "get_task", {"task_id": task_id})).content
        )
        assert got["status"] == "succeeded", f"task {got['status']}"
        return got

    got = await eventually(succeeded, within=30, every=0.1)
    assert '"value": 20.0' in got["result"]["text"]
    listed = json.loads((await manager.call(name, "list_tasks", {"limit": 5})).content)
    assert task_id in [t["id"] for t in listed["items"]]
    done = await manager.call(name, "list_tasks", {"status": "succeeded"})
    assert task_id in [t["id"] for t in json.loads(done.content)["items"]]
    held = await manager.call(name, "list_tasks", {"status": "awaiting_approval"})
    assert not held.is_error, held.content
    assert json.loads(held.content)["items"] == []
    missing = await manager.call(name, "get_task", {"task_id": "not-a-uuid"})
    assert missing.is_error
    assert "422" in missing.content


async def test_chatsys_as_an_mcp_server_over_stdio(api_url: str, worker: Worker) -> None:
    manager = McpManager(
        [parse_server({"name": "chatsys-api", "command": sys.executable, "cwd": str(ROOT),
                       "args": ["-m", "chatsys", "mcp", "--api-url", api_url]})]
    )  # fmt: skip
    try:
        await exercise(manager, "chatsys-api")
    finally:
        await manager.close()


async def test_chatsys_as_an_mcp_server_over_streamable_http(
    api_url: str, worker: Worker, tmp_path: Path
) -> None:
    port = free_port()
    env = clean_env(CHATSYS_MCP_API_URL=api_url)
    bridge = chatsys("mcp", "--transport", "http", "--port", str(port), env=env, log=tmp_path / "l")
    manager = McpManager([parse_server({"name": "remote", "url": f"http://127.0.0.1:{port}/mcp"})])
    try:
        await eventually(lambda: listening(port), within=30, every=0.1)
        await exercise(manager, "remote")
    finally:
        await manager.close()
        bridge.terminate()
        bridge.wait(10)


async def test_tools_answer_structured_objects_and_the_server_names_its_version(
    api_url: str, worker: Worker, tmp_path: Path
) -> None:
    async with bridge("--api-url", api_url, cwd=tmp_path) as client:
        assert client.server_info is not None
        assert client.server_info.name == "chatsys"
        assert client.server_info.version == __version__
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert tool.output_schema is not None, tool.name
            assert tool.output_schema["type"] == "object"
        task_schema = tools["get_task"].output_schema or {}
        assert {"id", "status", "result"} <= set(task_schema["properties"])
        limits = tools["wait_for_task"].input_schema["properties"]["timeout_seconds"]
        assert (limits["minimum"], limits["maximum"]) == (1, 600)

        made = await client.call_tool("submit_task", {"input": "what is (2 + 3) * 4?"})
        assert not made.is_error, made.content
        queued = made.structured_content
        assert queued is not None
        assert queued["status"] == "queued"
        assert "steps" in queued  # the API's other fields come through
        [text] = made.content
        assert text.type == "text"
        assert json.loads(text.text) == queued  # the same object for text-only clients

        waited = await client.call_tool(
            "wait_for_task", {"task_id": queued["id"], "timeout_seconds": 30}
        )
        assert not waited.is_error, waited.content
        ended = waited.structured_content
        assert ended is not None
        assert ended["ended"] is True
        assert ended["waited_seconds"] < 30
        assert ended["task"]["id"] == queued["id"]
        assert ended["task"]["status"] == "succeeded"
        assert '"value": 20.0' in ended["task"]["result"]["text"]
        assert ended["task"]["finished_at"] is not None

        again = await client.call_tool("wait_for_task", {"task_id": queued["id"]})
        assert again.structured_content is not None
        assert again.structured_content["ended"] is True  # an ended task answers at once
        assert again.structured_content["waited_seconds"] < 5

        listed = await client.call_tool("list_tasks", {"status": "succeeded"})
        assert listed.structured_content is not None
        items = listed.structured_content["items"]
        assert [(t["id"], t["status"]) for t in items] == [(queued["id"], "succeeded")]


async def test_wait_for_task_gives_up_after_its_timeout_with_the_current_status(
    api_url: str, tmp_path: Path
) -> None:
    """No worker here: the task stays queued."""
    async with bridge("--api-url", api_url, cwd=tmp_path) as client:
        made = await client.call_tool("submit_task", {"input": "what is 1 + 1?"})
        assert made.structured_content is not None
        task_id = made.structured_content["id"]
        waited = await client.call_tool("wait_for_task", {"task_id": task_id, "timeout_seconds": 1})
        assert not waited.is_error, waited.content
        answer = waited.structured_content
        assert answer is not None
        assert answer["ended"] is False
        assert 1 <= answer["waited_seconds"] < 5
        assert answer["task"]["id"] == task_id
        assert answer["task"]["status"] == "queued"
        assert answer["task"]["result"] is None
        for out_of_bounds in (0, 601):
            refused = await client.call_tool(
                "wait_for_task", {"task_id": task_id, "timeout_seconds": out_of_bounds}
            )
            assert refused.is_error
            assert "timeout_seconds" in str(refused.content)


async def test_with_no_url_nor_key_it_calls_the_configured_port_with_the_local_admin_key(
    settings: Settings, tmp_path: Path
) -> None:
    keyed = settings.model_copy(update={"auth": AuthSettings(enabled=True)})
    _, key = await create_key(keyed, name="local admin", role=Role.ADMIN, subject="local")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    port = free_port()
    app = build_app(keyed)
    env = {"CHATSYS_API_PORT": str(port), "CHATSYS_DATA_DIR": str(data_dir)}
    async with app.router.lifespan_context(app), served(app, port):
        # no admin.key yet: the API refuses, and the error says where a key comes from
        async with bridge(cwd=tmp_path, **env) as client:
            refused = await client.call_tool("list_tasks", {})
            assert refused.is_error
            message = str(refused.content)
            assert "chatsys answered 401" in message
            assert "CHATSYS_MCP_API_KEY" in message
            assert str(data_dir / "admin.key") in message

        (data_dir / "admin.key").write_text(key + "\n")
        async with bridge(cwd=tmp_path, **env) as client:
            listed = await client.call_tool("list_tasks", {})
            assert not listed.is_error, listed.content
            assert listed.structured_content == {"items": [], "next_cursor": None}
