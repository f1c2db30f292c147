"""The MCP manager against real servers over real transports (acceptance 1, 3, 4)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import uvicorn

from chatsys.agents.mcp.config import McpDefaults, ServerConfig, parse_server
from chatsys.agents.mcp.manager import McpManager
from chatsys.agents.mcp.workspace import Workspaces, build_workspace_server
from chatsys.domain.shared.errors import Conflict, InvalidInput, NotFound, Unavailable
from tests.mcp.support import workspace_manager
from tests.support import ROOT, eventually, eventually_sync, free_port

TIME_SERVER = shutil.which("mcp-server-time", path=str(Path(sys.executable).parent))


def fake_server(name: str = "fake", **extra: Any) -> ServerConfig:
    definition = {
        "name": name,
        "command": sys.executable,
        "args": ["-m", "tests.fakes.mcp_server"],
        "cwd": str(ROOT),
        **extra,
    }
    return parse_server(definition)


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[McpManager]:
    assert TIME_SERVER is not None, "mcp-server-time is in the dev extra"
    running = workspace_manager(
        tmp_path / "ws",
        parse_server({"name": "time", "command": TIME_SERVER}),
        fake_server(timeout=1.5),
        fake_server("capped", max_result_chars=1000),
        parse_server({"name": "missing", "command": "no-such-mcp-server-command"}),
        restart_backoff=0.1,
        health_interval=1.0,
    )
    await running.start()
    yield running
    await running.close()


async def test_mcp_server_time_over_stdio(manager: McpManager) -> None:
    tools = {t.name: t for t in await manager.tools("time")}
    assert {"get_current_time", "convert_time"} <= set(tools)
    assert tools["get_current_time"].qualified_name == "time__get_current_time"
    assert "timezone" in tools["get_current_time"].input_schema["properties"]
    result = await manager.call("time", "get_current_time", {"timezone": "Europe/Paris"})
    assert not result.is_error, result.content
    assert json.loads(result.content)["timezone"] == "Europe/Paris"
    [info] = [s for s in await manager.servers() if s.name == "time"]
    assert info.state == "ready"
    assert info.tools == len(tools)
    assert info.pid is not None
    assert psutil.pid_exists(info.pid)


async def test_a_server_installed_in_chatsys_venv_starts_by_its_bare_name() -> None:
    """`pip install mcp-server-time` beside chatsys, then `"command": "mcp-server-time"`:
    it starts even though the venv's bin is not on the PATH the server is given."""
    path = ["/usr/bin", "/bin"]
    assert str(Path(sys.executable).parent) not in path
    assert shutil.which("mcp-server-time", path=":".join(path)) is None
    definition = {"name": "t", "command": "mcp-server-time", "env": {"PATH": ":".join(path)}}
    bare = McpManager([parse_server(definition)])
    try:
        result = await bare.call("t", "get_current_time", {"timezone": "UTC"})
        assert not result.is_error, result.content
        assert json.loads(result.content)["timezone"] == "UTC"
    finally:
        await bare.close()


async def test_the_session_is_pooled_across_calls(manager: McpManager) -> None:
    first = await manager.call("fake", "pid", {})
    for _ in range(5):
        again = await manager.call("fake", "pid", {})
        assert again.content == first.content  # one process serves every call
    assert manager.connection("fake").pid == int(first.content)


async def test_a_missing_command_is_a_failed_server_with_its_error(manager: McpManager) -> None:
    with pytest.raises(Unavailable, match="command not found"):
        await manager.tools("missing")
    [info] = [s for s in await manager.servers() if s.name == "missing"]
    assert info.state == "failed"
    assert "command not found: no-such-mcp-server-command" in (info.last_error or "")
    result = await manager.invoke("developer", "missing__anything", {}, workspace=None)
    assert result.is_error


async def test_arguments_that_break_the_schema_come_back_as_an_error_result(
    manager: McpManager,
) -> None:
    await manager.tools("time")
    result = await manager.invoke(
        "developer", "time__get_current_time", {"timezone": 42}, workspace=None
    )
    assert result.is_error
    assert "timezone: 42 is not of type 'string'" in result.content
    missing = await manager.invoke("developer", "time__get_current_time", {}, workspace=None)
    assert missing.is_error
    assert "'timezone' is a required property" in missing.content


async def test_unknown_servers_and_tools(manager: McpManager) -> None:
    with pytest.raises(NotFound):
        await manager.tools("nope")
    with pytest.raises(NotFound):
        await manager.call("time", "nope", {})
    result = await manager.invoke("developer", "time__nope", {}, workspace=None)
    assert result.is_error
    assert "unknown tool" in result.content


async def test_a_hanging_tool_fails_within_its_timeout(manager: McpManager) -> None:
    await manager.tools("fake")
    started = time.monotonic()
    result = await manager.call("fake", "hang", {})
    elapsed = time.monotonic() - started
    assert result.is_error
    assert "did not answer within 1.5 s" in result.content
    assert 1.4 < elapsed < 3.0
    assert (await manager.call("fake", "echo", {"text": "still here"})).content == "still here"


async def test_results_are_capped(manager: McpManager) -> None:
    result = await manager.call("capped", "big", {"chars": 5000})
    assert result.content.startswith("x" * 1000)
    assert result.content.endswith("[truncated: 4000 more characters]")


async def test_a_server_killed_mid_call_fails_the_call_and_is_restarted(
    manager: McpManager,
) -> None:
    pid = int((await manager.call("fake", "pid", {})).content)
    call = asyncio.create_task(manager.call("fake", "slow", {"seconds": 1.2}))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    result = await call
    assert time.monotonic() - started < 1.0  # at once, not at the call's timeout
    assert result.is_error
    assert "stopped during the call to 'slow'" in result.content
    again = await manager.call("fake", "pid", {})  # waits for the restart
    assert not again.is_error, again.content
    assert int(again.content) != pid
    connection = manager.connection("fake")
    assert connection.restarts == 1
    assert connection.state.value == "ready"


async def test_a_server_that_exits_by_itself_is_noticed_and_restarted(
    manager: McpManager,
) -> None:
    result = await manager.call("fake", "exit", {})
    assert result.is_error
    assert (await manager.call("fake", "echo", {"text": "back"})).content == "back"


async def test_an_idle_server_that_dies_is_restarted_in_the_background(
    manager: McpManager,
) -> None:
    pid = int((await manager.call("fake", "pid", {})).content)
    os.kill(pid, signal.SIGKILL)
    connection = manager.connection("fake")

    def restarted() -> bool:
        assert (connection.restarts, connection.state.value) == (1, "ready")
        return True

    await eventually(restarted, within=5)
    assert connection.pid not in (None, pid)


async def test_a_changed_tool_is_quarantined_until_accepted(manager: McpManager) -> None:
    before = {t.name: t for t in await manager.tools("fake")}
    assert before["echo"].status == "active"
    assert (await manager.call("fake", "mutate", {})).content == "mutated"

    async def changed() -> dict[str, Any] | None:
        tools = {t.name: t for t in await manager.tools("fake")}
        return tools if tools["echo"].digest != before["echo"].digest else None

    # notifications/tools/list_changed makes the manager list again
    tools = await eventually(changed, within=5)
    assert tools["echo"].status == "quarantined"
    assert "IGNORE PREVIOUS" in tools["echo"].description
    offered = [s.name for s in await manager.specs_for("developer")]
    assert "fake__echo" not in offered
    assert "fake__pid" in offered
    refused = await manager.invoke("developer", "fake__echo", {"text": "x"}, workspace=None)
    assert refused.is_error
    assert "quarantined" in refused.content
    accepted = await manager.accept("fake", "echo")
    assert accepted.status == "active"
    assert "fake__echo" in [s.name for s in await manager.specs_for("developer")]


async def test_roles_and_tool_patterns_decide_what_an_agent_sees(tmp_path: Path) -> None:
    running = workspace_manager(tmp_path / "ws", fake_server(roles=["qa"], tools=["echo", "p*"]))
    try:
        assert [s.name for s in await running.specs_for("developer")] == []
        assert sorted(s.name for s in await running.specs_for("qa")) == ["fake__echo", "fake__pid"]
        denied = await running.invoke("qa", "fake__hang", {}, workspace=None)
        assert denied.is_error
        denied = await running.invoke("developer", "fake__echo", {"text": "x"}, workspace=None)
        assert denied.is_error
        ok = await running.invoke("qa", "fake__echo", {"text": "x"}, workspace=None)
        assert ok.content == "x"
        workspace = [s.name for s in await running.specs_for("operator")]
        assert "workspace__read_file" in workspace
    finally:
        await running.close()


async def test_definitions_are_checked() -> None:
    with pytest.raises(InvalidInput, match="needs a 'command'"):
        parse_server({"name": "x", "transport": "stdio"})
    with pytest.raises(InvalidInput, match="reserved"):
        parse_server({"name": "workspace", "command": "x"})
    with pytest.raises(InvalidInput, match="name"):
        parse_server({"name": "a__b", "command": "x"})
    with pytest.raises(InvalidInput):
        parse_server({"name": "x", "command": "x", "unknown": 1})
    running = McpManager([fake_server()])
    with pytest.raises(Conflict):
        await running.add({"name": "fake", "command": "x"})
    with pytest.raises(Conflict):
        await running.remove("fake")


async def test_servers_added_through_the_store_reach_other_managers(tmp_path: Path) -> None:
    from chatsys.agents.mcp.store import MemoryMcpStore

    store = MemoryMcpStore()
    api = McpManager([], McpDefaults(sync_interval=0), store=store)
    worker = McpManager([], McpDefaults(sync_interval=0), store=store)
    try:
        definition = fake_server("added").model_dump(exclude_none=True)
        info = await api.add(definition)
        assert info.state == "ready"
        assert info.source == "api"
        assert "added" in [s.name for s in await worker.servers()]
        result = await worker.invoke("developer", "added__echo", {"text": "hi"}, workspace=None)
        assert result.content == "hi"
        await api.remove("added")
        assert "added" not in [s.name for s in await worker.servers()]
    finally:
        await api.close()
        await worker.close()


async def test_no_child_process_outlives_the_manager(tmp_path: Path) -> None:
    running = McpManager([fake_server(), fake_server("second")])
    pids = [int((await running.call(n, "pid", {})).content) for n in ("fake", "second")]
    assert all(psutil.pid_exists(p) for p in pids)
    await running.close()
    assert [p for p in pids if _alive(p)] == []
    assert [c.pid for c in psutil.Process().children(recursive=True) if c.pid in pids] == []


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_the_death_signal_stops_servers_of_a_killed_owner(tmp_path: Path) -> None:
    """The owner is SIGKILLed (no shutdown at all): the kernel kills its servers."""
    script = tmp_path / "owner.py"
    script.write_text(
        "import asyncio, sys\n"
        "from chatsys.agents.mcp.config import parse_server\n"
        "from chatsys.agents.mcp.manager import McpManager\n"
        "async def main():\n"
        "    m = McpManager([parse_server({'name': 'fake', 'command': sys.executable,\n"
        "        'args': ['-m', 'tests.fakes.mcp_server']})])\n"
        "    print('PID', (await m.call('fake', 'pid', {})).content, flush=True)\n"
        "    await asyncio.sleep(3600)\n"
        "asyncio.run(main())\n"
    )
    owner = subprocess.Popen(
        [sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        line = ""
        while not line.startswith("PID "):
            line = owner.stdout.readline()
            assert line, "the owner exited early"
        pid = int(line.split()[1])
        assert _alive(pid)
    finally:
        owner.kill()
        owner.wait(10)
    eventually_sync(
        lambda: not _alive(pid), within=5, message="the MCP server outlived its killed owner"
    )


# -- our own server over streamable HTTP -----------------------------------------------


@pytest.fixture
def http_workspace(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "served"
    app = build_workspace_server(Workspaces(root)).streamable_http_app()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    eventually_sync(lambda: server.started, within=10, every=0.02)
    try:
        yield f"http://127.0.0.1:{port}/mcp", root
    finally:
        server.should_exit = True
        thread.join(10)


async def test_our_server_over_streamable_http(http_workspace: tuple[str, Path]) -> None:
    url, root = http_workspace
    (root / "abc").mkdir(parents=True)
    (root / "abc" / "notes.txt").write_text("over http\n")
    running = McpManager([parse_server({"name": "remote", "url": url})])
    try:
        assert {t.name for t in await running.tools("remote")} == {
            "read_file", "write_file", "list_dir", "stat",
        }  # fmt: skip
        # The workspace comes from _meta, which the manager sends only to built-in servers:
        unscoped = await running.call("remote", "read_file", {"path": "notes.txt"})
        assert unscoped.is_error
        assert "no workspace" in unscoped.content
        [info] = await running.servers()
        assert (info.transport, info.state) == ("streamable-http", "ready")
    finally:
        await running.close()


# -- the npm reference filesystem server ----------------------------------------------


@pytest.fixture(scope="session")
def npm_filesystem_server() -> Path:
    npm = shutil.which("npm")
    node = shutil.which("node")
    if npm is None or node is None:
        pytest.skip("npm/node not installed: cannot test @modelcontextprotocol/server-filesystem")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "chatsys-tests/npm"
    entry = cache / "node_modules/@modelcontextprotocol/server-filesystem/dist/index.js"
    if not entry.exists():
        cache.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund",
             "@modelcontextprotocol/server-filesystem"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if done.returncode != 0 or not entry.exists():
            pytest.skip(f"npm install of server-filesystem failed: {done.stderr[-500:]}")
    return entry


async def test_the_npm_filesystem_server_over_stdio(
    npm_filesystem_server: Path, tmp_path: Path
) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "notes.txt").write_text("from the npm server\n")
    node = shutil.which("node")
    assert node is not None
    running = McpManager(
        [parse_server({"name": "fs", "command": node,
                       "args": [str(npm_filesystem_server), str(allowed)]})]
    )  # fmt: skip
    try:
        tools = {t.name for t in await running.tools("fs")}
        assert {"read_text_file", "list_directory", "write_file"} <= tools
        read = await running.call("fs", "read_text_file", {"path": str(allowed / "notes.txt")})
        assert not read.is_error, read.content
        assert "from the npm server" in read.content
        outside = await running.call("fs", "read_text_file", {"path": "/etc/hostname"})
        assert outside.is_error
        pid = running.connection("fs").pid
        assert pid is not None
    finally:
        await running.close()
    assert not _alive(pid)
