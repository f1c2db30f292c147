"""`chatsys api` and `chatsys worker` as real processes, talking over real HTTP."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
from arq.connections import create_pool

from chatsys.infra.redis import arq_redis_settings
from tests.support import chatsys, clean_env, free_port, terminating, wait_ready


async def test_api_and_worker_processes_serve_and_stop_cleanly(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = clean_env(
        CHATSYS_DATABASE_URL=database_url,
        CHATSYS_REDIS_URL=redis_url,
        CHATSYS_API_PORT=str(port),
        CHATSYS_WORKER_HEARTBEAT_INTERVAL="0.5",
        CHATSYS_LOG_FORMAT="json",
    )
    log = tmp_path / "processes.log"
    base = f"http://127.0.0.1:{port}"
    with (
        terminating(chatsys("api", env=env, log=log)) as api,
        terminating(chatsys("worker", env=env, log=log)) as worker,
    ):
        ready = wait_ready(base, 60, proc=api, log=log)
        assert {k: v["status"] for k, v in ready["components"].items()} == {  # type: ignore[attr-defined]
            "postgres": "ok",
            "redis": "ok",
            "worker": "ok",
        }
        async with httpx.AsyncClient(base_url=base) as client:
            made = await client.post("/v1/conversations", json={"title": "over real HTTP"})
            assert made.status_code == 201
            assert made.headers["x-request-id"]

        pool = await create_pool(arq_redis_settings(redis_url), default_queue_name="chatsys:queue")
        try:
            job = await pool.enqueue_job("chatsys.ping")
            assert job is not None
            result = await job.result(timeout=20)
        finally:
            await pool.aclose()
        assert result["pid"] == worker.pid
        assert result["database"] == "ok"

        api.send_signal(signal.SIGTERM)
        worker.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal it shut down on, so its status may be -SIGTERM
        assert api.wait(20) in (0, -signal.SIGTERM)
        assert worker.wait(20) == 0
    text = log.read_text()
    assert "Application shutdown complete" in text
    assert "Traceback" not in text, text[-3000:]
    assert "chatsys.worker.stopped" in text
