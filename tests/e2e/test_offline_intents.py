"""Offline, with `chatsys dev` running: one task per intent, each to success."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from chatsys.domain.nlu import Intent
from tests.support import chatsys, clean_env, eventually_sync, free_port, terminating, wait_ready

DATA = Path(__file__).resolve().parents[1] / "data" / "nlu_requests.jsonl"


def one_request_per_intent() -> dict[Intent, str]:
    chosen: dict[Intent, str] = {}
    for line in DATA.read_text().splitlines():
        row = json.loads(line)
        chosen.setdefault(Intent(row["intent"]), row["text"])
    return chosen


def test_every_intent_runs_to_success_offline(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env(CHATSYS_DATA_DIR=str(tmp_path / "data"), CHATSYS_API_PORT=str(port))
    log = tmp_path / "dev.log"
    with terminating(chatsys("dev", env=env, log=log)) as dev, httpx.Client(base_url=base) as http:
        wait_ready(base, 120, proc=dev, log=log)
        ids = {
            intent: http.post("/v1/tasks", json={"input": text}).json()["id"]
            for intent, text in one_request_per_intent().items()
        }
        tasks: dict[Intent, dict[str, Any]] = {}

        def all_finished() -> bool:
            for intent, task_id in ids.items():
                task = http.get(f"/v1/tasks/{task_id}").json()
                if task["status"] in ("succeeded", "failed", "cancelled"):
                    tasks[intent] = task
            assert set(tasks) == set(ids), f"still running: {sorted(set(ids) - set(tasks))}"
            return True

        eventually_sync(all_finished, within=90, every=0.2)
        events = {
            intent: http.get(f"/v1/tasks/{t['id']}/events", params={"limit": 1000}).json()
            for intent, t in tasks.items()
        }

    assert set(tasks) == set(Intent)
    for intent, task in tasks.items():
        assert task["status"] == "succeeded", (intent, task["error"])
        assert task["analysis"]["intent"] == intent.value
        assert task["plan"]["shape"] == intent.value
        assert task["steps"][-1]["key"] == "answer"
        assert all(s["status"] == "succeeded" and s["usage"]["total_tokens"] > 0
                   for s in task["steps"])  # fmt: skip
        assert "offline model" in task["result"]["text"]
        page = events[intent]["items"]
        assert [e["seq"] for e in page] == list(range(1, len(page) + 1))
        assert page[0]["type"] == "task.created"
        assert page[-1]["type"] == "task.succeeded"
