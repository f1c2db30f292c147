"""`chatsys keys create` on a data dir with no URLs set: with `chatsys dev` stopped (it
starts the embedded Postgres for itself, migrates, stops it) and while it runs (it uses
dev's Postgres); `chatsys dev` then takes either key."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support import (
    ROOT,
    chatsys,
    clean_env,
    free_port,
    processes_mentioning,
    terminating,
    wait_ready,
)


def keys_create(data_dir: Path, name: str, *more: str) -> subprocess.CompletedProcess[str]:
    command = ["keys", "create", "--name", name, "--role", "admin", *more]
    return subprocess.run(
        [sys.executable, "-m", "chatsys", *command],
        env=clean_env(CHATSYS_DATA_DIR=str(data_dir)),
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def printed_key(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    [key] = done.stdout.split()  # the key alone on stdout, the rest on stderr
    return key


def test_keys_create_works_with_dev_stopped_and_running(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = keys_create(data_dir, "ci")  # a fresh data dir: initdb, migrations, the key
    ci_key = printed_key(first)
    assert "created admin key" in first.stderr
    assert processes_mentioning(str(data_dir)) == []  # its Postgres is stopped again

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "dev.log"
    env = clean_env(
        CHATSYS_DATA_DIR=str(data_dir), CHATSYS_API_PORT=str(port), CHATSYS_AUTH_ENABLED="true"
    )
    with terminating(chatsys("dev", env=env, log=log)) as dev:
        wait_ready(base, 120, proc=dev, log=log)
        me = httpx.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {ci_key}"})
        assert me.status_code == 200, me.text
        assert (me.json()["role"], me.json()["default_priority"]) == ("admin", "normal")

        second = keys_create(data_dir, "while dev runs", "--priority", "low")
        later_key = printed_key(second)
        assert "using the embedded Postgres of the chatsys process" in second.stderr
        assert "default priority low" in second.stderr
        me = httpx.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {later_key}"})
        assert me.status_code == 200, me.text
        assert me.json()["default_priority"] == "low"
        assert httpx.get(f"{base}/readyz").status_code == 200  # dev is still whole

        dev.send_signal(signal.SIGINT)
        assert dev.wait(60) == 0
