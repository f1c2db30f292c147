"""Task runs and webhook attempts have a slot pool each (the arq queue of task runs, the
webhook slots claiming from Postgres): a backlog of deliveries to receivers that accept
and never answer does not hold up a new task, nor deliveries to other receivers."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from arq.worker import Worker
from pydantic import SecretStr
from sqlalchemy import text

from chatsys.bootstrap import Resources, build_worker
from chatsys.domain.webhooks.model import DeliveryStatus, WebhookDelivery, new_webhook_id
from chatsys.infra.queue import DELIVER_WEBHOOK
from chatsys.infra.settings import (
    AuthSettings,
    DatabaseSettings,
    Environment,
    LimitSettings,
    RedisSettings,
    Settings,
    WebhookSettings,
    WorkerSettings,
)
from tests.support import eventually, free_port, stop_worker
from tests.webhook_receiver import Receiver

BACKLOG = 300
WEBHOOK_SLOTS = 20


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment=Environment.TEST,
        data_dir=tmp_path / "data",
        database=DatabaseSettings(url=SecretStr(database_url), pool_size=5),
        redis=RedisSettings(url=SecretStr(redis_url)),
        worker=WorkerSettings(
            heartbeat_interval=0.2,
            heartbeat_ttl=3.0,
            task_concurrency=4,
            webhook_concurrency=WEBHOOK_SLOTS,
        ),
        # Every attempt hangs for the whole test.
        webhooks=WebhookSettings(allow_private_networks=True, connect_timeout=5, timeout=120),
        auth=AuthSettings(enabled=False),
        limits=LimitSettings(enabled=False),
    )


@pytest.fixture
async def hanging() -> AsyncIterator[list[Receiver]]:
    receivers = [await Receiver(hang=True).start() for _ in range(3)]
    yield receivers
    for receiver in receivers:
        await receiver.stop()


async def _start_delay(
    client: httpx.AsyncClient, text: str, *, webhook_url: str | None = None
) -> tuple[str, float]:
    """Submit a task (with a webhook_url: its deliveries are signed with its secret); the
    seconds from its submission to its start."""
    made = await client.post("/v1/tasks", json={"input": text, "webhook_url": webhook_url})
    assert made.status_code == 202, made.text
    task_id = made.json()["id"]

    async def started() -> dict[str, Any] | None:
        found: dict[str, Any] = (await client.get(f"/v1/tasks/{task_id}")).json()
        return found if found["started_at"] else None

    task = await eventually(started, within=60, message="the task never started")
    begun = datetime.fromisoformat(task["started_at"]) - datetime.fromisoformat(task["created_at"])
    return task_id, begun.total_seconds()


async def _queued(settings: Settings) -> int:
    """Deliveries waiting for an attempt (pending in Postgres)."""
    resources = await Resources.open(settings, role="test")
    try:
        async with resources.engine.connect() as conn:
            count = await conn.scalar(
                text("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")
            )
        return int(count or 0)
    finally:
        await resources.close()


async def resources_zcard(settings: Settings, queue: str) -> int:
    resources = await Resources.open(settings, role="test")
    try:
        count: int = await resources.redis.zcard(queue)
        return count
    finally:
        await resources.close()


async def _pile_up(settings: Settings, task_id: str, urls: list[str], count: int = BACKLOG) -> None:
    """``count`` pending deliveries of one task to ``urls`` in turn, all due."""
    resources = await Resources.open(settings, role="test")
    try:
        now = datetime.now(UTC)
        ids = [uuid4() for _ in range(count)]
        async with resources.unit_of_work() as uow:
            for n, delivery_id in enumerate(ids):
                await uow.deliveries.add(
                    WebhookDelivery(
                        id=delivery_id,
                        owner="local",
                        task_id=UUID(task_id),
                        webhook_id=new_webhook_id(delivery_id),
                        event_type="task.succeeded",
                        url=f"{urls[n % len(urls)]}/stall",
                        body='{"type":"task.succeeded"}',
                        status=DeliveryStatus.PENDING,
                        created_at=now,
                        next_attempt_at=now - timedelta(seconds=1),
                    )
                )
            await uow.commit()
    finally:
        await resources.close()


async def test_a_new_task_starts_promptly_behind_hundreds_of_stalled_deliveries(
    client: httpx.AsyncClient, settings: Settings, hanging: list[Receiver]
) -> None:
    worker: Worker = build_worker(settings)
    worker._handle_signals = False
    running = asyncio.create_task(worker.async_run())
    try:
        first, _ = await _start_delay(client, "hello there", webhook_url=hanging[0].url)
        _, idle = await _start_delay(client, "hello first")  # the worker is warm now
        await _pile_up(settings, first, [r.url for r in hanging])

        # Every webhook slot is held by a receiver that never answers, the rest queued.
        await eventually(
            lambda: sum(len(r.received) for r in hanging) >= WEBHOOK_SLOTS,
            within=30,
            message="the deliveries never reached the receivers",
        )
        waiting = await _queued(settings)
        assert waiting >= BACKLOG - WEBHOOK_SLOTS

        _, behind = await _start_delay(client, "hello again")
        in_flight = sum(len(r.received) for r in hanging)
        print(
            f"\nenqueue-to-start: {idle:.3f} s without a backlog, {behind:.3f} s behind "
            f"{BACKLOG} stalled deliveries ({in_flight} in flight, {waiting} pending)"
        )
        assert behind < 5.0
        waiting = await _queued(settings)
        assert waiting >= BACKLOG - 2 * WEBHOOK_SLOTS  # and the backlog was still there
        assert in_flight <= WEBHOOK_SLOTS  # the webhook pool kept to its size
    finally:
        await stop_worker(worker, running)


async def test_an_attempt_job_of_an_old_version_is_harmless_and_the_delivery_is_made(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    async with Receiver() as receiver:
        worker = build_worker(settings)
        worker._handle_signals = False
        running = asyncio.create_task(worker.async_run())
        try:
            task_id, _ = await _start_delay(client, "hello there", webhook_url=receiver.url)
            resources = await Resources.open(settings, role="test")
            try:
                now = datetime.now(UTC)
                delivery_id = uuid4()
                async with resources.unit_of_work() as uow:
                    await uow.deliveries.add(
                        WebhookDelivery(
                            id=delivery_id,
                            owner="local",
                            task_id=UUID(task_id),
                            webhook_id=new_webhook_id(delivery_id),
                            event_type="task.succeeded",
                            url=f"{receiver.url}/old",
                            body="{}",
                            status=DeliveryStatus.PENDING,
                            created_at=now,
                            next_attempt_at=now,
                        )
                    )
                    await uow.commit()
                # As versions before the webhook slots did: a job per attempt.
                await resources.redis.enqueue_job(
                    DELIVER_WEBHOOK,
                    str(delivery_id),
                    _job_id=f"webhook:{delivery_id}:0",
                    _queue_name=settings.worker.queue_name,
                )
            finally:
                await resources.close()
            await receiver.wait_for(2, within=20)  # the task's own and the old one
            assert sorted(r.path for r in receiver.received) == ["/", "/old"]

            async def job_gone() -> bool:
                return await resources_zcard(settings, settings.worker.queue_name) == 0

            await eventually(job_gone, within=20)  # the old job ran and left the queue
            await asyncio.sleep(0.5)
            assert len(receiver.received) == 2  # each once
        finally:
            await stop_worker(worker, running)


async def test_a_stalled_receiver_holds_its_share_of_slots_and_others_get_theirs(
    client: httpx.AsyncClient, settings: Settings, hanging: list[Receiver]
) -> None:
    fair = settings.model_copy(
        update={"webhooks": settings.webhooks.model_copy(
            update={"max_in_flight_per_endpoint": 3}
        )}
    )  # fmt: skip
    stalled = hanging[0]
    async with Receiver() as quick:
        worker = build_worker(fair)
        worker._handle_signals = False
        running = asyncio.create_task(worker.async_run())
        try:
            task_id, _ = await _start_delay(client, "hello there", webhook_url=quick.url)
            await quick.wait_for(1, within=20)
            await _pile_up(fair, task_id, [stalled.url], count=100)  # first in the queue
            await _pile_up(fair, task_id, [quick.url], count=20)
            started = asyncio.get_running_loop().time()
            await quick.wait_for(21, within=30)
            took = asyncio.get_running_loop().time() - started
            print(
                f"\n20 deliveries to a quick receiver behind 100 to a stalled one: {took:.2f} s; "
                f"{len(stalled.received)} attempts under way to the stalled one"
            )
            assert len(stalled.received) == 3  # its share, and no more
        finally:
            await stop_worker(worker, running)


async def test_retries_keep_their_schedule_behind_a_backlog_to_stalled_receivers(
    client: httpx.AsyncClient, settings: Settings, hanging: list[Receiver]
) -> None:
    kept = settings.model_copy(
        update={"webhooks": settings.webhooks.model_copy(
            update={"max_in_flight_per_endpoint": 3, "retry_schedule": [0, 1, 1, 1]}
        )}
    )  # fmt: skip
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: refused at once
    worker = build_worker(kept)
    worker._handle_signals = False
    running = asyncio.create_task(worker.async_run())
    try:
        # A webhook_url gives the task the secret its deliveries are signed with.
        task_id, _ = await _start_delay(client, "hello there", webhook_url=hanging[0].url)
        await _pile_up(kept, task_id, [r.url for r in hanging], count=BACKLOG)
        await eventually(
            lambda: sum(len(r.received) for r in hanging) == 3 * len(hanging), within=30
        )
        await _pile_up(kept, task_id, [closed], count=5)  # behind the whole backlog
        resources = await Resources.open(kept, role="test")
        try:

            async def four_attempts_each() -> list[Any] | None:
                async with resources.engine.connect() as conn:
                    rows = (
                        await conn.execute(
                            text(
                                "SELECT a.delivery_id, a.number, a.attempted_at, a.latency_ms"
                                " FROM webhook_attempts a JOIN webhook_deliveries d"
                                " ON d.id = a.delivery_id WHERE d.url LIKE :closed"
                                " ORDER BY a.delivery_id, a.number"
                            ),
                            {"closed": f"{closed}%"},
                        )
                    ).all()
                return list(rows) if len(rows) == 5 * 4 else None

            attempts = await eventually(four_attempts_each, within=30)
            waiting = await _queued(kept)
        finally:
            await resources.close()
        late = [
            (b.attempted_at - a.attempted_at).total_seconds() - b.latency_ms / 1000 - 1.0
            for a, b in itertools.pairwise(attempts)
            if a.delivery_id == b.delivery_id
        ]
        print(
            f"\nretries due 1 s apart behind {waiting} pending deliveries to stalled receivers:"
            f" late by at most {max(late):.2f} s (jitter +/- 0.1 s)"
        )
        assert waiting >= BACKLOG - 9 - 5  # the backlog was still there
        assert max(late) < 1.0  # within a second of their schedule
    finally:
        await stop_worker(worker, running)


async def test_a_high_priority_task_starts_ahead_of_a_low_priority_backlog(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    one_slot = settings.model_copy(
        # No slot for high-priority runs alone: this is about the order of the queue (a
        # high run and a low one would start together, in either order).
        update={"worker": settings.worker.model_copy(
            update={"task_concurrency": 1, "high_priority_slots": 0}
        )}
    )  # fmt: skip
    lows = []
    for n in range(30):  # queued before any worker runs
        made = await client.post("/v1/tasks", json={"input": f"hello {n}", "priority": "low"})
        assert made.status_code == 202, made.text
        assert made.json()["priority"] == "low"
        lows.append(made.json()["id"])
    high = (await client.post("/v1/tasks", json={"input": "hello", "priority": "high"})).json()
    assert high["priority"] == "high"
    worker = build_worker(one_slot)
    worker._handle_signals = False
    running = asyncio.create_task(worker.async_run())
    try:

        async def started(task_id: str) -> datetime | None:
            found = (await client.get(f"/v1/tasks/{task_id}")).json()
            return datetime.fromisoformat(found["started_at"]) if found["started_at"] else None

        high_start = await eventually(lambda: started(high["id"]), within=30)
        earlier = [t for t in lows if (s := await started(t)) is not None and s < high_start]
        print(f"\nhigh priority started after {len(earlier)} of 30 queued low-priority tasks")
        assert earlier == []
        # ... and the low ones still run.
        await eventually(lambda: started(lows[-1]), within=120)
    finally:
        await stop_worker(worker, running)
