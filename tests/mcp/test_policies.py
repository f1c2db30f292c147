"""Tool policies in the MCP manager and the agents' invoker, on the in-process workspace
server: ``deny`` is never offered nor run, ``ask`` is offered but runs only approved."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatsys.agents.mcp.config import McpDefaults, ServerConfig
from chatsys.agents.mcp.invoker import McpToolInvoker
from chatsys.agents.mcp.manager import McpManager
from chatsys.agents.mcp.workspace import SERVER_NAME, Workspaces, build_workspace_server
from chatsys.domain.approvals.model import ToolPolicy


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[McpManager]:
    config = ServerConfig(
        name=SERVER_NAME,
        transport="builtin",
        roles=["operator"],
        policy="ask",
        tool_policies={"write_file": "deny", "st*": "auto"},
    )
    (tmp_path / "w1").mkdir()
    (tmp_path / "w1" / "notes.txt").write_text("hello")
    running = McpManager(
        [], McpDefaults(), builtins=[(config, build_workspace_server(Workspaces(tmp_path)))]
    )
    yield running
    await running.close()


async def test_policies_decide_what_is_offered_and_how(manager: McpManager) -> None:
    offered = {s.name: s.policy for s in await manager.specs_for("operator")}
    assert offered == {
        "workspace__read_file": ToolPolicy.ASK,
        "workspace__list_dir": ToolPolicy.ASK,
        "workspace__stat": ToolPolicy.AUTO,
    }
    tools = {t.name: t.policy for t in await manager.tools(SERVER_NAME)}
    assert tools["write_file"] == "deny"


async def test_deny_never_runs_and_ask_runs_only_approved(manager: McpManager) -> None:
    invoker = McpToolInvoker(manager)
    assert "workspace__write_file" not in {
        s.name for s in await invoker.tools_for("operator", workspace="w1")
    }
    written = await invoker.call(
        "operator",
        "workspace__write_file",
        {"path": "x.txt", "content": "no"},
        workspace="w1",
        approved=True,  # not even approved: deny is deny
    )
    assert written.is_error
    assert "denied by policy" in written.content

    unapproved = await invoker.call(
        "operator", "workspace__read_file", {"path": "notes.txt"}, workspace="w1"
    )
    assert unapproved.is_error
    assert "needs an approval" in unapproved.content
    approved = await invoker.call(
        "operator", "workspace__read_file", {"path": "notes.txt"}, workspace="w1", approved=True
    )
    assert not approved.is_error
    assert "hello" in approved.content
    stat = await invoker.call("operator", "workspace__stat", {"path": "notes.txt"}, workspace="w1")
    assert not stat.is_error
