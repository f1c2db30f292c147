"""Tasks through the API, run by a real worker on real Postgres and Redis (offline model)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from arq.worker import Worker

from tests.support import eventually


async def wait_for(client: httpx.AsyncClient, task_id: str, *, within: float = 20) -> Any:
    async def final() -> Any:
        task = (await client.get(f"/v1/tasks/{task_id}")).json()
        status = task["status"]
        assert status in ("succeeded", "failed", "cancelled"), f"task still {status}"
        return task

    return await eventually(final, within=within)


async def events(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    page = (await client.get(f"/v1/tasks/{task_id}/events", params={"limit": 1000})).json()
    items: list[dict[str, Any]] = page["items"]
    return items


async def test_a_task_runs_to_success_with_a_gapless_event_log(
    client: httpx.AsyncClient, worker: Worker
) -> None:
    made = await client.post(
        "/v1/tasks", json={"input": "Write a Python function that slugifies a title"}
    )
    assert made.status_code == 202
    assert made.json()["status"] == "queued"
    assert made.headers["location"] == f"/v1/tasks/{made.json()['id']}"
    task = await wait_for(client, made.json()["id"])

    assert task["status"] == "succeeded", task["error"]
    assert task["analysis"]["intent"] == "code_generation"
    assert [s["key"] for s in task["steps"]] == ["implement", "review", "test", "answer"]
    assert all(s["status"] == "succeeded" and s["output"] for s in task["steps"])
    assert all(s["usage"]["total_tokens"] > 0 for s in task["steps"])
    assert task["usage"]["total_tokens"] == sum(s["usage"]["total_tokens"] for s in task["steps"])
    assert task["result"]["text"] == task["steps"][-1]["output"]

    log = await events(client, task["id"])
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    assert log[0]["type"] == "task.created"
    assert log[-1]["type"] == "task.succeeded"
    for step in task["steps"]:
        deltas = "".join(
            e["data"]["text"]
            for e in log
            if e["type"] == "message.delta" and e["data"]["step"] == step["key"]
        )
        assert deltas == step["output"]


async def test_the_event_log_pages_with_after(client: httpx.AsyncClient, worker: Worker) -> None:
    made = (await client.post("/v1/tasks", json={"input": "hello there"})).json()
    await wait_for(client, made["id"])
    first = (await client.get(f"/v1/tasks/{made['id']}/events", params={"limit": 2})).json()
    rest = (
        await client.get(f"/v1/tasks/{made['id']}/events", params={"after": first["last_seq"]})
    ).json()
    seqs = [e["seq"] for e in first["items"] + rest["items"]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert not first["done"]
    assert rest["done"]


async def test_idempotency_key_replays_and_conflicts(client: httpx.AsyncClient) -> None:
    body = {"input": "explain CRDTs"}
    headers = {"Idempotency-Key": "k-123"}
    first = await client.post("/v1/tasks", json=body, headers=headers)
    again = await client.post("/v1/tasks", json=body, headers=headers)
    assert again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = await client.post("/v1/tasks", json={"input": "something else"}, headers=headers)
    assert other.status_code == 409
    listed = (await client.get("/v1/tasks")).json()["items"]
    assert len(listed) == 1


async def test_cancel_a_queued_task_then_cancelling_again_conflicts(
    client: httpx.AsyncClient,
) -> None:
    made = (await client.post("/v1/tasks", json={"input": "write a haiku generator"})).json()
    cancelled = await client.post(f"/v1/tasks/{made['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = await client.post(f"/v1/tasks/{made['id']}/cancel")
    assert again.status_code == 409
    assert "already cancelled" in again.json()["detail"]
    assert (await events(client, made["id"]))[-1]["type"] == "task.cancelled"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"input": "   "}, "input must not be empty"),
        ({"input": "x" * 40_000}, "the limit is 32768 bytes"),
        ({"input": "x", "agents": ["developer", "wizard"]}, "unknown agent role 'wizard'"),
        (
            {
                "input": "x",
                "plan": [
                    {"key": "a", "agent": "qa", "instruction": "i", "depends_on": ["b"]},
                    {"key": "b", "agent": "qa", "instruction": "i", "depends_on": ["a"]},
                ],
            },
            "cycle",
        ),
        (
            {"input": "x", "plan": [{"key": "a", "agent": "qa", "instruction": "i",
                                     "depends_on": ["nope"]}]},
            "depends on unknown steps: nope",
        ),
        ({"input": "x", "model": "openai/gpt-nope"}, "model 'openai/gpt-nope' is not configured"),
        ({"input": "x", "surprise": 1}, "body.surprise: Extra inputs are not permitted"),
        ({"input": 42}, "body.input: Input should be a valid string"),
    ],
)  # fmt: skip
async def test_bad_task_requests_are_422_and_create_nothing(
    client: httpx.AsyncClient, body: dict[str, Any], detail: str
) -> None:
    answer = await client.post("/v1/tasks", json=body)
    assert answer.status_code == 422, answer.text
    assert detail in answer.json()["detail"]
    assert (await client.get("/v1/tasks")).json()["items"] == []


async def test_unknown_task_ids_are_404(client: httpx.AsyncClient) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    for answer in (
        await client.get(f"/v1/tasks/{missing}"),
        await client.post(f"/v1/tasks/{missing}/cancel"),
        await client.get(f"/v1/tasks/{missing}/events"),
    ):
        assert answer.status_code == 404
    negative = await client.get(f"/v1/tasks/{missing}/events", params={"after": -1})
    assert negative.status_code == 422


async def test_a_conversation_message_starts_a_task_that_sees_the_history(
    client: httpx.AsyncClient, worker: Worker
) -> None:
    conversation = (await client.post("/v1/conversations", json={"title": "users"})).json()
    url = f"/v1/conversations/{conversation['id']}/messages"
    first = await client.post(url, json={"content": "Write a FastAPI endpoint in app/users.py"})
    assert first.status_code == 202
    await wait_for(client, first.json()["id"])
    second = (await client.post(url, json={"content": "now add tests for it"})).json()
    done = await wait_for(client, second["id"])
    assert done["analysis"]["intent"] == "testing"
    assert done["analysis"]["context"]["follow_up"] is True
    assert "app/users.py" in done["analysis"]["entities"]["file_paths"]
    messages = (await client.get(url)).json()["items"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[3]["content"] == done["result"]["text"]
    listed = (await client.get("/v1/tasks", params={"conversation_id": conversation["id"]})).json()
    assert len(listed["items"]) == 2


async def test_analyze_and_agents_endpoints(client: httpx.AsyncClient) -> None:
    analysis = (
        await client.post("/v1/analyze", json={"text": "Our Kubernetes pods are OOMKilled"})
    ).json()
    assert analysis["intent"] in ("debugging", "devops_deployment")
    assert "kubernetes" in analysis["technologies"]
    blank = await client.post("/v1/analyze", json={"text": "  "})
    assert blank.status_code == 422
    agents = (await client.get("/v1/agents")).json()["items"]
    assert {a["role"] for a in agents} >= {"architect", "developer", "reviewer", "qa"}
    assert all(a["model"] == "chatsys-offline/team" for a in agents)


async def test_concurrent_requests_with_one_idempotency_key_make_one_task(
    client: httpx.AsyncClient,
) -> None:
    body = {"input": "summarise the design doc"}
    headers = {"Idempotency-Key": "race-1"}
    answers = await asyncio.gather(
        *(client.post("/v1/tasks", json=body, headers=headers) for _ in range(8))
    )
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    assert len((await client.get("/v1/tasks")).json()["items"]) == 1
