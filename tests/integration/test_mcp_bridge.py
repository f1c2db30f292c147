"""``chatsys mcp``: chatsys' API as MCP tools, over stdio and streamable HTTP, against a
real chatsys API served over HTTP."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from arq.worker import Worker
from fastapi import FastAPI

from chatsys.agents.mcp.config import parse_server
from chatsys.agents.mcp.manager import McpManager
from tests.support import ROOT, chatsys, clean_env, eventually, free_port


@pytest.fixture
async def api_url(app: FastAPI) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, within=10, every=0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await serving


async def listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def exercise(manager: McpManager, name: str) -> None:
    assert {t.name for t in await manager.tools(name)} == {"submit_task", "get_task", "list_tasks"}
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
