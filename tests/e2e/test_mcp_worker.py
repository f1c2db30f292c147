"""A real ``chatsys worker`` process leaves no MCP server behind, whether it is stopped
with SIGTERM (its shutdown stops them) or killed with SIGKILL (the kernel does)."""

from __future__ import annotations

import json
import signal
import sys
import uuid
from pathlib import Path

import pytest

from tests.support import (
    ROOT,
    chatsys,
    clean_env,
    eventually_sync,
    processes_mentioning,
    terminating,
)


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


def _gone(marker: str) -> bool:
    left = processes_mentioning(f"--port {marker}")
    assert left == [], f"orphaned MCP server: {left}"
    return True


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_no_mcp_server_outlives_the_worker(
    database_url: str, redis_url: str, tmp_path: Path, stop: signal.Signals
) -> None:
    marker = str(40000 + uuid.uuid4().int % 20000)
    log = tmp_path / "worker.log"
    env = _worker_env(database_url, redis_url, marker)
    with terminating(chatsys("worker", env=env, log=log)) as worker:
        eventually_sync(
            lambda: processes_mentioning(f"--port {marker}"),
            within=60,
            every=0.1,
            message=lambda: f"the MCP server did not start\n{log.read_text()[-3000:]}",
        )
        worker.send_signal(stop)
        code = worker.wait(30)
        assert code == (0 if stop is signal.SIGTERM else -signal.SIGKILL)
    eventually_sync(lambda: _gone(marker), within=10, every=0.1)
    if stop is signal.SIGTERM:
        text = log.read_text()
        assert "chatsys.worker.stopped" in text
        assert "Traceback" not in text, text[-3000:]
