"""The README's run command, `chatsys dev`, on a fresh data dir with no URLs set."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support import (
    ROOT,
    alive,
    chatsys,
    clean_env,
    descendants,
    eventually_sync,
    free_port,
    processes_mentioning,
    terminating,
    wait_ready,
)


def _start(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    # As a newcomer runs it: API keys and rate limits on (the defaults).
    env = clean_env(
        CHATSYS_DATA_DIR=str(data_dir),
        CHATSYS_API_PORT=str(port),
        CHATSYS_AUTH_ENABLED="true",
        CHATSYS_LIMITS_ENABLED="true",
    )
    return chatsys("dev", env=env, log=log)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_dev_serves_everything_stops_cleanly_and_keeps_data(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "dev.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    with terminating(_start(data_dir, port, log)) as dev:
        ready = wait_ready(base, 120, proc=dev, log=log)
        assert all(c["status"] == "ok" for c in ready["components"].values())  # type: ignore[attr-defined]
        key = (data_dir / "admin.key").read_text().strip()
        assert (data_dir / "admin.key").stat().st_mode & 0o077 == 0  # owner-only
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{base}/v1/conversations").status_code == 401
        assert httpx.get(f"{base}/v1/me", headers=headers).json()["role"] == "admin"
        made = httpx.post(
            f"{base}/v1/conversations", json={"title": "kept across runs"}, headers=headers
        )
        assert made.status_code == 201
        family = descendants(dev.pid)
        kinds = " ".join(" ".join(p.cmdline()) for p in family)
        assert "postgres" in kinds
        assert "redis-server" in kinds
        assert "chatsys api" in kinds
        assert "chatsys worker" in kinds

        # the supervisor prints its banner once it sees /readyz too
        eventually_sync(lambda: "ready at" in log.read_text(), within=10, every=0.1)
        assert f"ready at {base}" in log.read_text()
        assert f"local admin key (also in {data_dir / 'admin.key'}):\n  {key}" in log.read_text()
        dev.send_signal(stop_signal)
        assert dev.wait(60) == 0
    assert alive(family) == []
    assert processes_mentioning(str(data_dir)) == []

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with terminating(_start(data_dir, port, log)) as again:
        wait_ready(base, 120, proc=again, log=log)
        assert (data_dir / "admin.key").read_text().strip() == key  # the same key again
        items = httpx.get(f"{base}/v1/conversations", headers=headers).json()["items"]
        assert [c["title"] for c in items] == ["kept across runs"]
        family = descendants(again.pid)
        again.send_signal(stop_signal)
        assert again.wait(60) == 0
    assert alive(family) == []


def test_a_second_dev_on_the_same_data_dir_is_refused_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "dev.log"
    port = free_port()
    with terminating(_start(data_dir, port, log)) as first:
        wait_ready(f"http://127.0.0.1:{port}", 120, proc=first, log=log)
        second = subprocess.run(
            [sys.executable, "-m", "chatsys", "dev", "--port", str(free_port())],
            env=clean_env(CHATSYS_DATA_DIR=str(data_dir)),
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert second.returncode == 1
        assert "in use by another chatsys process" in second.stderr
        assert "Traceback" not in second.stderr
        # the first one still serves
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200


def test_dev_refuses_a_busy_port_before_starting_anything(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "chatsys", "dev", "--port", str(port)],
            env=clean_env(CHATSYS_DATA_DIR=str(tmp_path / "data")),
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
    assert done.returncode == 1
    assert f"port {port}" in done.stderr
    assert "already in use" in done.stderr
    assert not (tmp_path / "data" / "postgres").exists()
