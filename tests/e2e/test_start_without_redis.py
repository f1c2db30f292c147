"""A `chatsys worker` (and a `chatsys api`) started while Redis is not there yet waits
for it instead of exiting, and serves as soon as it answers: a deployment whose Redis
comes up after the workers, or restarts while a worker is starting, needs no restart."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
from arq.connections import create_pool

from chatsys.infra.embedded.redis import EmbeddedRedis
from chatsys.infra.embedded.server import secret_file
from chatsys.infra.redis import arq_redis_settings
from tests.support import chatsys, clean_env, eventually_sync, free_port, terminating

ARQ_GIVES_UP_AFTER = 4.0  # arq's own start: 3 connection retries 1 s apart


def _events(log: Path) -> list[str]:
    return [
        json.loads(line)["event"] for line in log.read_text().splitlines() if line.startswith("{")
    ]


async def _ping(redis_url: str) -> dict[str, object]:
    pool = await create_pool(arq_redis_settings(redis_url), default_queue_name="chatsys:queue")
    try:
        job = await pool.enqueue_job("chatsys.ping")
        assert job is not None
        result: dict[str, object] = await job.result(timeout=90)
        return result
    finally:
        await pool.aclose()


def test_a_worker_and_an_api_started_before_redis_wait_for_it(
    database_url: str, tmp_path: Path
) -> None:
    redis = EmbeddedRedis(tmp_path / "later")
    (tmp_path / "later").mkdir()
    port = free_port()
    password = secret_file(tmp_path / "later" / "redis.password")
    redis_url = f"redis://:{password}@127.0.0.1:{port}/0"
    api_port = free_port()
    env = clean_env(
        CHATSYS_DATABASE_URL=database_url,
        CHATSYS_REDIS_URL=redis_url,
        CHATSYS_API_PORT=str(api_port),
        CHATSYS_WORKER_HEARTBEAT_INTERVAL="0.5",
        CHATSYS_LOG_FORMAT="json",
    )
    worker_log, api_log = tmp_path / "worker.log", tmp_path / "api.log"
    with (
        terminating(chatsys("worker", env=env, log=worker_log)) as worker,
        terminating(chatsys("api", env=env, log=api_log)) as api,
    ):
        eventually_sync(
            lambda: "chatsys.worker.waiting_for_redis" in _events(worker_log) or None,
            within=60,
            message=lambda: worker_log.read_text()[-3000:],
        )
        waiting_since = time.monotonic()
        base = f"http://127.0.0.1:{api_port}"

        def api_up() -> httpx.Response | None:
            assert api.poll() is None, api_log.read_text()[-3000:]
            try:
                return httpx.get(f"{base}/readyz", timeout=2)
            except httpx.HTTPError:
                return None

        assert eventually_sync(api_up, within=60).status_code == 503  # up, not ready
        time.sleep(max(0.0, ARQ_GIVES_UP_AFTER + 1 - (time.monotonic() - waiting_since)))
        assert worker.poll() is None, worker_log.read_text()[-3000:]
        assert api.poll() is None, api_log.read_text()[-3000:]

        redis.start(port=port)
        try:
            result = asyncio.run(_ping(redis_url))  # the worker took a job
            assert result["database"] == "ok"

            def ready() -> bool | None:
                return httpx.get(f"{base}/readyz", timeout=5).status_code == 200 or None

            eventually_sync(ready, within=90, message=lambda: api_log.read_text()[-3000:])
            events = _events(worker_log)
            assert events.count("chatsys.worker.waiting_for_redis") == 1  # logged once
            assert "chatsys.worker.redis_answered" in events
            assert "chatsys.crashed" not in events
        finally:
            for proc in (worker, api):
                proc.terminate()
                proc.wait(30)
            redis.stop()
    assert worker.returncode == 0, worker_log.read_text()[-3000:]
