"""Webhook attempts: the retry schedule, success, the dead letter, 410 Gone, redelivery,
and the claim: due deliveries only, a receiver's share at most, none of a paused
endpoint but its probe."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from chatsys.domain.shared.errors import Conflict
from chatsys.domain.tasks.model import EventType
from chatsys.domain.webhooks.delivery import GONE_REASON, DeliverWebhook, Redeliver
from chatsys.domain.webhooks.fairness import CircuitBreaker
from chatsys.domain.webhooks.model import (
    DeliveryStatus,
    RetryPolicy,
    SendResult,
    WebhookDelivery,
    WebhookEndpoint,
    new_secret,
    new_webhook_id,
)
from tests.unit.fakes import FakeWebhookSender
from tests.unit.world import World

POLICY = RetryPolicy(schedule=(0, 5, 60), jitter=0)  # three attempts: now, +5 s, +60 s
ERROR = SendResult(500, 12.0, "HTTP 500")
OK = SendResult(204, 8.0)
GONE = SendResult(410, 9.0, "HTTP 410")


async def endpoint(w: World) -> UUID:
    found = WebhookEndpoint(
        uuid4(), "ann", "https://hooks.example.com/in", new_secret(),
        (EventType.TASK_SUCCEEDED,), w.clock.now(),
    )  # fmt: skip
    async with w.db.uow() as uow:
        await uow.webhooks.add(found)
        await uow.commit()
    return found.id


async def delivery(w: World, endpoint_id: UUID) -> UUID:
    """A delivery due now, as ``Callbacks.record`` leaves it."""
    delivery_id = uuid4()
    async with w.db.uow() as uow:
        await uow.deliveries.add(
            WebhookDelivery(
                id=delivery_id,
                owner="ann",
                task_id=uuid4(),
                webhook_id=new_webhook_id(delivery_id),
                event_type=EventType.TASK_SUCCEEDED,
                url="https://hooks.example.com/in",
                body='{"type":"task.succeeded"}',
                status=DeliveryStatus.PENDING,
                created_at=w.clock.now(),
                next_attempt_at=w.clock.now(),
                endpoint_id=endpoint_id,
            )
        )
        await uow.commit()
    return delivery_id


async def later_delivery(w: World, endpoint_id: UUID) -> UUID:
    """A delivery due a moment after the one made before it (the claim takes the oldest
    due first)."""
    w.clock.advance(0.01)
    return await delivery(w, endpoint_id)


def deliver(
    w: World,
    sender: FakeWebhookSender,
    rand: float = 0.5,
    *,
    policy: RetryPolicy = POLICY,
    per_receiver: int = 8,
    breaker: CircuitBreaker | None = None,
) -> DeliverWebhook:
    return DeliverWebhook(
        w.db.uow, w.clock, sender, policy, rand=lambda: rand, per_receiver=per_receiver,
        breaker=breaker,
    )  # fmt: skip


async def attempt_due(attempts: DeliverWebhook, limit: int = 10) -> list[DeliveryStatus]:
    """Claim what is due and make each attempt: their statuses, in claim order."""
    return [(await attempts.execute(o)).status for o in await attempts.claim(limit)]


def stored(w: World, delivery_id: UUID) -> WebhookDelivery:
    return w.db.committed.deliveries[delivery_id].delivery


async def test_a_500_schedules_the_next_attempt_per_the_policy() -> None:
    w = World()
    delivery_id = await delivery(w, await endpoint(w))
    sender = FakeWebhookSender(ERROR)

    assert await attempt_due(deliver(w, sender)) == [DeliveryStatus.PENDING]

    row = stored(w, delivery_id)
    assert row.next_attempt_at == w.clock.now() + timedelta(seconds=5)
    assert [(a.number, a.status_code) for a in row.attempts] == [(1, 500)]
    [(url, headers, body)] = sender.sent
    assert (url, body) == ("https://hooks.example.com/in", b'{"type":"task.succeeded"}')
    assert headers["webhook-id"] == new_webhook_id(delivery_id)
    assert headers["webhook-signature"].startswith("v1,")


async def test_nothing_is_claimed_before_its_time() -> None:
    w = World()
    await delivery(w, await endpoint(w))
    sender = FakeWebhookSender(ERROR)
    attempts = deliver(w, sender)
    await attempt_due(attempts)

    w.clock.advance(4)  # due in 5 s (the claim's margin is half a second)
    assert await attempt_due(attempts) == []
    w.clock.advance(0.6)
    assert await attempt_due(attempts) == [DeliveryStatus.SUCCEEDED]
    assert len(sender.sent) == 2


async def test_each_retry_waits_its_own_delay_and_the_last_failure_is_final() -> None:
    w = World()
    delivery_id = await delivery(w, await endpoint(w))
    attempts = deliver(w, FakeWebhookSender(ERROR, ERROR, ERROR))

    assert await attempt_due(attempts) == [DeliveryStatus.PENDING]
    w.clock.advance(5)
    assert await attempt_due(attempts) == [DeliveryStatus.PENDING]
    assert stored(w, delivery_id).next_attempt_at == w.clock.now() + timedelta(seconds=60)
    w.clock.advance(60)
    assert await attempt_due(attempts) == [DeliveryStatus.FAILED]

    row = stored(w, delivery_id)
    assert (row.attempt_count, row.next_attempt_at) == (3, None)
    assert row.finished_at == w.clock.now()
    w.clock.advance(3600)
    assert await attempt_due(attempts) == []  # a dead letter is not tried again


async def test_success_ends_the_delivery() -> None:
    w = World()
    delivery_id = await delivery(w, await endpoint(w))
    attempts = deliver(w, FakeWebhookSender(ERROR, OK))
    await attempt_due(attempts)
    w.clock.advance(5)

    assert await attempt_due(attempts) == [DeliveryStatus.SUCCEEDED]

    row = stored(w, delivery_id)
    assert (row.status, row.last_status_code, row.next_attempt_at) == (
        DeliveryStatus.SUCCEEDED,
        204,
        None,
    )


async def test_retry_delays_are_spread_by_the_jitter() -> None:
    w = World()
    policy = RetryPolicy(schedule=(0, 100), jitter=0.1)
    late = await delivery(w, await endpoint(w))
    await attempt_due(deliver(w, FakeWebhookSender(ERROR), 1.0, policy=policy))
    early = await delivery(w, await endpoint(w))
    await attempt_due(deliver(w, FakeWebhookSender(ERROR), 0.0, policy=policy))
    now = w.clock.now()
    assert stored(w, late).next_attempt_at == now + timedelta(seconds=110)
    assert stored(w, early).next_attempt_at == now + timedelta(seconds=90)


async def test_a_network_error_is_retried() -> None:
    w = World()
    delivery_id = await delivery(w, await endpoint(w))
    timeout = SendResult(None, 10_000.0, "timed out")
    assert await attempt_due(deliver(w, FakeWebhookSender(timeout))) == [DeliveryStatus.PENDING]
    assert stored(w, delivery_id).last_error == "timed out"


async def test_a_410_fails_at_once_and_disables_the_endpoint() -> None:
    w = World()
    endpoint_id = await endpoint(w)
    gone = await delivery(w, endpoint_id)
    sender = FakeWebhookSender(GONE)

    assert await attempt_due(deliver(w, sender)) == [DeliveryStatus.FAILED]

    assert stored(w, gone).next_attempt_at is None  # no retry
    assert stored(w, gone).last_error == GONE_REASON
    disabled = w.db.committed.endpoints[endpoint_id]
    assert (disabled.enabled, disabled.disabled_reason) == (False, GONE_REASON)
    # The endpoint's other deliveries are not sent any more.
    waiting = await delivery(w, endpoint_id)
    assert await attempt_due(deliver(w, sender)) == [DeliveryStatus.FAILED]
    assert len(sender.sent) == 1
    assert "disabled" in (stored(w, waiting).last_error or "")
    with pytest.raises(Conflict, match="disabled"):
        await Redeliver(w.db.uow, w.clock, w.nudge).execute(gone, owner="ann", actor="key:ann")


async def test_a_redelivery_starts_the_retry_schedule_afresh() -> None:
    w = World()
    delivery_id = await delivery(w, await endpoint(w))
    attempts = deliver(w, FakeWebhookSender(*[ERROR] * 5))
    for wait in (0, 5, 60):
        w.clock.advance(wait)
        await attempt_due(attempts)
    assert stored(w, delivery_id).status is DeliveryStatus.FAILED

    with pytest.raises(Conflict):  # not while a delivery is still under way
        await Redeliver(w.db.uow, w.clock, w.nudge).execute(
            await delivery(w, await endpoint(w)), owner="ann", actor="key:ann"
        )
    w.nudge.due_in.clear()
    again = await Redeliver(w.db.uow, w.clock, w.nudge).execute(
        delivery_id, owner="ann", actor="key:ann"
    )
    assert again.status is DeliveryStatus.PENDING
    assert w.nudge.due_in == [0]  # due now
    await attempt_due(attempts)

    row = stored(w, delivery_id)
    assert row.status is DeliveryStatus.PENDING  # retried, not dead
    assert row.attempt_count == 4  # numbering goes on
    assert row.next_attempt_at == w.clock.now() + timedelta(seconds=5)  # the round's first delay


async def test_a_receiver_gets_its_share_of_attempts_and_the_rest_wait_unattempted() -> None:
    w = World()
    hook = await endpoint(w)
    first, second, third = [await later_delivery(w, hook) for _ in range(3)]
    other = await later_delivery(w, await endpoint(w))  # another receiver: not held back
    attempts = deliver(w, FakeWebhookSender(), per_receiver=2)
    w.clock.advance(1)

    claimed = await attempts.claim(10)
    assert [o.id for o in claimed] == [first, other, second]  # receivers in turn
    assert await attempts.claim(10) == []  # the receiver has its two under way
    row = stored(w, third)
    assert (row.status, row.attempt_count, row.attempts) == (DeliveryStatus.PENDING, 0, [])

    await attempts.execute(claimed[0])  # one of its two ends: room for one more
    [next_one] = await attempts.claim(10)
    assert next_one.id == third


async def test_a_worker_s_claims_given_back_are_due_at_once_with_no_attempt_spent() -> None:
    w = World()
    hook = await endpoint(w)
    delivery_id = await delivery(w, hook)
    attempts = deliver(w, FakeWebhookSender(), per_receiver=1)
    [claimed] = await attempts.claim(10)

    await attempts.release([claimed.id])

    row = stored(w, delivery_id)
    assert (row.status, row.attempt_count) == (DeliveryStatus.PENDING, 0)
    assert [o.id for o in await attempts.claim(10)] == [delivery_id]


async def test_a_paused_endpoint_waits_then_lets_one_probe_through() -> None:
    w = World()
    hook = await endpoint(w)
    breaker = CircuitBreaker(threshold=2, backoff=30, max_backoff=100)
    sender = FakeWebhookSender(ERROR, ERROR)
    attempts = deliver(w, sender, breaker=breaker)
    ids = [await later_delivery(w, hook) for _ in range(2)]
    assert await attempt_due(attempts) == [DeliveryStatus.PENDING, DeliveryStatus.PENDING]
    assert w.db.committed.endpoints[hook].paused_until == w.clock.now() + timedelta(seconds=30)

    w.clock.advance(10)  # their retries are due, the endpoint is paused: nothing goes
    assert await attempts.claim(10) == []
    assert [stored(w, i).attempt_count for i in ids] == [1, 1]  # no attempt spent
    w.clock.advance(20)
    [probe] = await attempts.claim(10)  # the pause is over: one probe at a time
    assert await attempts.claim(10) == []
    assert (await attempts.execute(probe)).status is DeliveryStatus.SUCCEEDED
    assert w.db.committed.endpoints[hook].paused_until is None  # the circuit closed
    assert [o.id for o in await attempts.claim(10)] == [i for i in ids if i != probe.id]


def test_the_pause_starts_at_the_threshold_and_doubles_up_to_the_longest() -> None:
    breaker = CircuitBreaker(threshold=3, backoff=30, max_backoff=100)
    assert [breaker.pause(n) for n in range(1, 7)] == [None, None, 30, 60, 100, 100]
