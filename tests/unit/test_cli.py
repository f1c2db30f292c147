from __future__ import annotations

import json
import subprocess
import sys

from tests.support import ROOT, clean_env


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatsys", *args],
        check=False,
        capture_output=True,
        text=True,
        env=clean_env(**env),
        cwd=ROOT,
        timeout=60,
    )


def test_help_explains_every_command() -> None:
    out = run("--help").stdout
    for command in ("dev", "api", "worker", "migrate", "openapi"):
        assert f"    {command} " in out


def test_openapi_needs_no_server_and_has_stable_operation_ids() -> None:
    done = run("openapi")
    assert done.returncode == 0, done.stderr
    spec = json.loads(done.stdout)
    ids = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {"health-readyz", "conversations-create_conversation"} <= ids


def test_api_without_urls_exits_with_a_helpful_message() -> None:
    done = run("api")
    assert done.returncode == 2
    assert "CHATSYS_DATABASE_URL and CHATSYS_REDIS_URL not set" in done.stderr
    assert "Traceback" not in done.stderr
