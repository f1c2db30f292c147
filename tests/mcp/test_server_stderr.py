"""A stdio MCP server's stderr reaches our log line by line, through the pipeline and
its scrubber: a server printing the credentials it was given prints them masked."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator

import pytest

from chatsys.agents.mcp.config import McpDefaults
from chatsys.agents.mcp.manager import McpManager
from chatsys.infra.logging import configure_logging
from chatsys.infra.settings import Settings
from tests.mcp.test_servers import fake_server
from tests.support import eventually

TOKEN = "ghp_" + "Z" * 36  # the server's own credential: matches no pattern by its shape
SAID = f"connecting to redis://:{TOKEN}@cache:6379 with Authorization: Bearer {TOKEN}"


@pytest.fixture
def log_output(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    configure_logging(Settings(log_level="INFO", log_format="json"), force=True)
    yield out
    monkeypatch.undo()
    configure_logging(Settings(), force=True)


async def test_a_servers_stderr_is_logged_masked(log_output: io.StringIO) -> None:
    noisy = fake_server("noisy", args=["-m", "tests.fakes.mcp_server", "--say-on-stderr", SAID])
    manager = McpManager([noisy], McpDefaults())
    await manager.start()
    try:
        assert "echo" in {tool.name for tool in await manager.tools("noisy")}

        def relayed() -> list[dict[str, str]]:
            return [
                json.loads(line)
                for line in log_output.getvalue().splitlines()
                if '"chatsys.mcp.server_stderr"' in line
            ]

        [line] = await eventually(relayed, within=10)
    finally:
        await manager.close()
    assert line["server"] == "noisy"
    assert line["line"] == "connecting to redis://:***@cache:6379 with Authorization: ***"
    assert TOKEN not in log_output.getvalue()
