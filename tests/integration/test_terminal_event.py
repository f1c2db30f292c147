"""The terminal event reaches live subscribers at once, however long its publish takes.

Issue 20: under load some SSE clients got ``task.succeeded`` only from the quiet check,
twice ``CHATSYS_STREAM_KEEPALIVE`` late; the event was never published. The runner's
heartbeat, beating between the final commit and the end of the publish, found the task
no longer ``running`` (the runner had just ended it), took that for a lost lease and
cancelled the run, publish and all. Here the publish of the terminal event is made
slow (as a loaded event loop or a busy Redis makes it) while the heartbeat beats every
50 ms, so the old code loses the event on every run instead of on 3-8% of them.
Everything else is real: the worker from its composition root, Postgres, Redis, and a
live subscription through the API's pub/sub hub.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from uuid import UUID

import httpx
import pytest
import redis.asyncio as aioredis

from chatsys.bootstrap import build_worker
from chatsys.domain.streaming.ports import LiveSubscription
from chatsys.domain.tasks.model import TERMINAL_EVENTS, TaskEvent
from chatsys.infra.events import RedisEventHub, RedisEventPublisher
from chatsys.infra.settings import Settings, WorkerSettings
from tests.support import stop_worker

HOLD = 0.5  # how long the terminal event's publish takes: ten heartbeats
IDLE = 60.0  # the subscriber's quiet check: far beyond the bound below


@pytest.fixture
def beating(settings: Settings) -> Settings:
    worker = WorkerSettings(heartbeat_interval=0.2, heartbeat_ttl=3.0, task_heartbeat=0.05)
    return settings.model_copy(update={"worker": worker})


@pytest.fixture
def slow_terminal_publish(monkeypatch: pytest.MonkeyPatch) -> None:
    publish = RedisEventPublisher.publish

    async def slow(
        self: RedisEventPublisher, events: Sequence[tuple[TaskEvent, UUID | None]]
    ) -> None:
        if any(event.type in TERMINAL_EVENTS for event, _ in events):
            await asyncio.sleep(HOLD)
        await publish(self, events)

    monkeypatch.setattr(RedisEventPublisher, "publish", slow)


async def _next(subscription: LiveSubscription) -> TaskEvent:
    item = await subscription.next(IDLE)
    assert isinstance(item, TaskEvent), f"the live feed said {item!r}"
    return item


async def test_a_slow_publish_of_the_terminal_event_still_reaches_live_subscribers(
    client: httpx.AsyncClient, beating: Settings, redis_url: str, slow_terminal_publish: None
) -> None:
    made = await client.post("/v1/tasks", json={"input": "say hi", "agents": ["assistant"]})
    assert made.status_code == 202
    task_id = UUID(made.json()["id"])

    redis = aioredis.Redis.from_url(redis_url)
    hub = RedisEventHub(redis)
    live: list[TaskEvent] = []
    try:
        async with hub.task(task_id, buffer=1000) as subscription:  # active before the run
            worker = build_worker(beating)
            worker._handle_signals = False
            job = asyncio.create_task(worker.async_run())
            try:
                async with asyncio.timeout(60):  # the worker starts (imports LiteLLM), claims
                    live.append(await _next(subscription))
                # The run takes well under a second; the quiet check would come after 60 s.
                async with asyncio.timeout(15):
                    while live[-1].type not in TERMINAL_EVENTS:
                        live.append(await _next(subscription))
            finally:
                await stop_worker(worker, job)
    finally:
        await hub.close()
        await redis.aclose()

    assert live[-1].type == "task.succeeded"
    seqs = [e.seq for e in live]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # live, in order, no gap
    task = (await client.get(f"/v1/tasks/{task_id}")).json()
    assert task["status"] == "succeeded"
    log = (await client.get(f"/v1/tasks/{task_id}/events", params={"limit": 1000})).json()
    assert [(e["seq"], e["type"]) for e in log["items"][-len(live) :]] == [
        (e.seq, e.type) for e in live
    ]  # every event after the subscription came live, the terminal one included
