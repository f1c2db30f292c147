"""Deleting an endpoint while one of its attempts is being recorded: both lock the
endpoint's row before the delivery's, so neither waits on the other in a cycle (in the
other order Postgres found a deadlock and failed the delivery job)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from chatsys.bootstrap import Resources
from chatsys.bootstrap.components import retry_policy, webhook_sender
from chatsys.domain.tasks.model import Task, TaskStatus
from chatsys.domain.webhooks.delivery import DeliverWebhook
from chatsys.domain.webhooks.fairness import CircuitBreaker
from chatsys.domain.webhooks.model import DeliveryStatus, WebhookDelivery
from chatsys.infra.clock import SystemClock
from chatsys.infra.settings import Settings, WebhookSettings
from tests.support import eventually, plain_dsn
from tests.webhook_receiver import Receiver


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, with loopback receivers allowed and a retry after 5 s."""
    webhooks = WebhookSettings(allow_private_networks=True, retry_schedule=[0, 5])
    return settings.model_copy(update={"webhooks": webhooks})


async def _pending_delivery(resources: Resources, endpoint_id: UUID, url: str) -> UUID:
    task = Task(uuid4(), "local", "x", TaskStatus.SUCCEEDED, datetime.now(UTC))
    delivery_id = uuid4()
    async with resources.unit_of_work() as uow:
        await uow.tasks.add(task)
        await uow.deliveries.add(
            WebhookDelivery(
                id=delivery_id, owner="local", task_id=task.id,
                webhook_id=f"msg_{delivery_id.hex}", event_type="task.succeeded", url=url,
                body="{}", status=DeliveryStatus.PENDING, created_at=datetime.now(UTC),
                next_attempt_at=datetime.now(UTC), endpoint_id=endpoint_id,
            )
        )  # fmt: skip
        await uow.commit()
    return delivery_id


async def test_a_delete_while_an_attempt_is_recorded_does_not_deadlock(
    client: httpx.AsyncClient, settings: Settings, database_url: str
) -> None:
    async with Receiver() as receiver:
        receiver.hang = True  # holds the attempt until released, then answers nothing
        url = f"{receiver.url}/in"
        endpoint = (await client.post("/v1/webhooks", json={"url": url})).json()
        resources = await Resources.open(settings, role="test")
        deleting = await asyncpg.connect(plain_dsn(database_url))
        try:
            delivery_id = await _pending_delivery(resources, UUID(endpoint["id"]), url)
            deliver = DeliverWebhook(
                resources.unit_of_work, SystemClock(), webhook_sender(settings),
                retry_policy(settings), breaker=CircuitBreaker(5, 1.0, 60.0),
            )  # fmt: skip
            [claimed] = await deliver.claim(10)
            assert claimed.id == delivery_id
            attempt = asyncio.create_task(deliver.execute(claimed))
            await receiver.wait_for(1)  # claimed, being sent
            # The delete's first half: the endpoint's row, locked until its commit.
            deleting_tx = deleting.transaction()
            await deleting_tx.start()
            await deleting.execute("DELETE FROM webhook_endpoints WHERE id = $1", endpoint["id"])
            receiver._released.set()  # the attempt fails: its outcome is recorded now

            async def blocked() -> bool:  # the attempt's outcome waits on a lock
                waiting: int = await deleting.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database() AND pid <> pg_backend_pid()"
                )
                return waiting > 0

            await eventually(blocked, within=20, message="the attempt never waited")
            # Its second half: the endpoint's unfinished deliveries end as failed.
            await deleting.execute(
                "UPDATE webhook_deliveries SET status = 'failed' WHERE endpoint_id = $1"
                " AND status IN ('pending', 'delivering')",
                endpoint["id"],
            )
            await deleting_tx.commit()
            outcome = await asyncio.wait_for(attempt, 20)  # no deadlock error
            assert outcome.status is DeliveryStatus.PENDING  # a retry, which finds no endpoint
            assert len(receiver.received) == 1
        finally:
            await deleting.close()
            await resources.close()
