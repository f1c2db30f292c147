"""API keys and rate limits across real processes: the first key from `chatsys keys
create`, one request allowance shared by two `chatsys api` processes, and stream
tickets that never reach the log."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support import ROOT, GiveUp, chatsys, clean_env, eventually_sync, free_port, terminating


def wait_alive(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Up is enough here: no worker runs, so /readyz would say unavailable."""

    def up() -> bool:
        if proc.poll() is not None:
            raise GiveUp(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        return False

    eventually_sync(
        up,
        within=90,
        every=0.2,
        message=lambda: f"{base} did not come up\n{log.read_text()[-3000:]}",
    )


def test_keys_from_the_cli_and_a_rate_limit_shared_by_two_api_processes(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    common = {
        "CHATSYS_DATABASE_URL": database_url,
        "CHATSYS_REDIS_URL": redis_url,
        "CHATSYS_AUTH_ENABLED": "true",
        "CHATSYS_LIMITS_ENABLED": "true",
        "CHATSYS_LIMITS_MEMBER_REQUESTS": "10",
        "CHATSYS_LOG_FORMAT": "json",
    }
    made = subprocess.run(
        [sys.executable, "-m", "chatsys", "keys", "create", "--name", "ci", "--role", "member"],
        env=clean_env(**common),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("csk_")
    assert "it is shown only now" in made.stderr
    assert key not in made.stderr

    ports = free_port(), free_port()
    log = tmp_path / "api.log"
    with (
        terminating(chatsys("api", env=clean_env(**common, CHATSYS_API_PORT=str(ports[0])),
                            log=log)) as a,
        terminating(chatsys("api", env=clean_env(**common, CHATSYS_API_PORT=str(ports[1])),
                            log=log)) as b,
    ):  # fmt: skip
        bases = [f"http://127.0.0.1:{p}" for p in ports]
        for base, proc in zip(bases, (a, b), strict=True):
            wait_alive(base, proc, log)
        headers = {"Authorization": f"Bearer {key}"}
        codes = [
            httpx.get(f"{bases[i % 2]}/v1/me", headers=headers, timeout=10).status_code
            for i in range(13)
        ]
        refused = httpx.get(f"{bases[1]}/v1/me", headers=headers, timeout=10)
    assert codes == [200] * 10 + [429] * 3
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-remaining"] == "0"
    text = log.read_text()
    assert key not in text
    assert key.rsplit("_", 1)[1] not in text
    assert "Traceback" not in text


def create_key(env: dict[str, str]) -> str:
    made = subprocess.run(
        [sys.executable, "-m", "chatsys", "keys", "create", "--name", "ci", "--role", "member"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def ws_outcome(url: str) -> tuple[list[dict[str, Any]], int | None]:
    """The first frame of a WebSocket stream (then hang up), or its close code."""
    with connect(url, open_timeout=10) as ws:
        try:
            return [json.loads(ws.recv(timeout=10))], None
        except ConnectionClosed as closed:
            return [], closed.rcvd.code if closed.rcvd else None


def sse_outcome(url: str) -> tuple[int, str]:
    """The status of an SSE stream and its first event's data line (then hang up)."""
    with httpx.stream("GET", url, headers={"Accept": "text/event-stream"}, timeout=10) as answer:
        if answer.status_code != 200:
            return answer.status_code, answer.read().decode()
        for line in answer.iter_lines():
            if line.startswith("data: "):
                return answer.status_code, line
    raise AssertionError("the stream ended before its first event")


@pytest.mark.timeout(180)
def test_ticketed_streams_leave_no_ticket_in_the_log(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = clean_env(
        CHATSYS_DATABASE_URL=database_url,
        CHATSYS_REDIS_URL=redis_url,
        CHATSYS_AUTH_ENABLED="true",
        CHATSYS_LOG_FORMAT="json",
        CHATSYS_LOG_LEVEL="INFO",
    )
    key = create_key(env)
    port = free_port()
    base, log = f"http://127.0.0.1:{port}", tmp_path / "api.log"
    with terminating(chatsys("api", env={**env, "CHATSYS_API_PORT": str(port)}, log=log)) as proc:
        wait_alive(base, proc, log)
        headers = {"Authorization": f"Bearer {key}"}
        task = httpx.post(f"{base}/v1/tasks", json={"input": "hi"}, headers=headers, timeout=10)
        task_id = task.json()["id"]

        def ticket() -> str:
            issued = httpx.post(f"{base}/v1/stream-tickets", headers=headers, timeout=10)
            return str(issued.json()["ticket"])

        socket_url = f"ws://127.0.0.1:{port}/v1/tasks/{task_id}/stream?ticket={ticket()}"
        frames, _ = ws_outcome(socket_url)
        assert [f["type"] for f in frames] == ["task.created"]
        assert ws_outcome(socket_url) == ([], 4401)
        events_url = f"{base}/v1/tasks/{task_id}/events?ticket={ticket()}"
        status, first = sse_outcome(events_url)
        assert status == 200
        assert "task.created" in first
        assert sse_outcome(events_url)[0] == 401
        proc.terminate()
        proc.wait(30)
    text = log.read_text()
    assert "cst_" not in text
    assert "ticket=" not in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    sockets = [line for line in lines if line.get("event") == "chatsys.api.websocket"]
    stream = f"/v1/tasks/{task_id}/stream"
    assert sorted((s["path"], s["close_code"]) for s in sockets) == [(stream, 1000), (stream, 4401)]
    assert all(s["request_id"] and s["duration_ms"] >= 0 for s in sockets)
    requests = [line for line in lines if line.get("event") == "chatsys.api.request"]
    events = [
        (r["method"], r["status"]) for r in requests if r["path"] == f"/v1/tasks/{task_id}/events"
    ]
    assert events == [("GET", 200), ("GET", 401)]
    assert all(r["request_id"] and r["duration_ms"] >= 0 for r in requests)
