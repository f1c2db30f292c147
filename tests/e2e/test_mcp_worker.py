"""A real ``chatsys worker`` process leaves no MCP server behind, whether it is stopped
with SIGTERM (its shutdown stops them) or killed with SIGKILL (the kernel does)."""

from __future__ import annotations

import json
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support import ROOT, chatsys, clean_env, processes_mentioning, terminating


def _worker_env(database_url: str, redis_url: str, marker: str) -> dict[str, str]:
    server = {
        "name": "fake",
        "command": sys.executable,
        # The unused --port value marks this test's server in the process table.
        "args": ["-m", "tests.fakes.mcp_server", "--port", marker],
        "cwd": str(ROOT),
        "lazy": False,
    }
    return clean_env(
        CHATSYS_DATABASE_URL=database_url,
        CHATSYS_REDIS_URL=redis_url,
        CHATSYS_MCP_SERVERS=json.dumps([server]),
        CHATSYS_LOG_FORMAT="json",
    )


def _wait_for(marker: str, *, present: bool, within: float) -> list[str]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = processes_mentioning(f"--port {marker}")
        if bool(found) == present:
            return found
        time.sleep(0.1)
    return processes_mentioning(f"--port {marker}")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_no_mcp_server_outlives_the_worker(
    database_url: str, redis_url: str, tmp_path: Path, stop: signal.Signals
) -> None:
    marker = str(40000 + uuid.uuid4().int % 20000)
    log = tmp_path / "worker.log"
    env = _worker_env(database_url, redis_url, marker)
    with terminating(chatsys("worker", env=env, log=log)) as worker:
        started = _wait_for(marker, present=True, within=60)
        assert started, f"the MCP server did not start:\n{log.read_text()[-3000:]}"
        worker.send_signal(stop)
        code = worker.wait(30)
        assert code == (0 if stop is signal.SIGTERM else -signal.SIGKILL)
    assert _wait_for(marker, present=False, within=10) == [], "orphaned MCP server"
    if stop is signal.SIGTERM:
        text = log.read_text()
        assert "chatsys.worker.stopped" in text
        assert "Traceback" not in text, text[-3000:]
