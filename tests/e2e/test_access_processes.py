"""API keys and rate limits across real processes: the first key from `chatsys keys
create`, and one request allowance shared by two `chatsys api` processes."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import httpx

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
