"""Webhook attempts: the retry schedule, success, the dead letter, 410 Gone, redelivery."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from chatsys.domain.shared.errors import Conflict
from chatsys.domain.tasks.model import EventType
from chatsys.domain.webhooks.delivery import GONE_REASON, DeliverWebhook, Redeliver
from chatsys.domain.webhooks.fairness import CircuitBreaker, InFlightLimit
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


def deliver(w: World, sender: FakeWebhookSender, rand: float = 0.5) -> DeliverWebhook:
    return DeliverWebhook(w.db.uow, w.clock, sender, w.webhook_jobs, POLICY, rand=lambda: rand)


def stored(w: World, delivery_id: UUID) -> WebhookDelivery:
    return w.db.committed.deliveries[delivery_id].delivery


async def test_a_500_schedules_the_next_attempt_per_the_policy() -> None:
    w = World()
    delivery_id = await delivery(w, await endpoint(w))
    sender = FakeWebhookSender(ERROR)

    assert await deliver(w, sender).execute(delivery_id) is DeliveryStatus.PENDING

    row = stored(w, delivery_id)
    assert row.next_attempt_at == w.clock.now() + timedelta(seconds=5)
    assert [(a.number, a.status_code) for a in row.attempts] == [(1, 500)]
    assert w.webhook_jobs.jobs == [(delivery_id, 1, 5)]
    [(url, headers, body)] = sender.sent
    assert (url, body) == ("https://hooks.example.com/in", b'{"type":"task.succeeded"}')
    assert headers["webhook-id"] == new_webhook_id(delivery_id)
    assert headers["webhook-signature"].startswith("v1,")


async def test_an_attempt_before_its_time_sends_nothing() -> None:
    w = World()
    delivery_id = await delivery(w, await endpoint(w))
    sender = FakeWebhookSender(ERROR)
    await deliver(w, sender).execute(delivery_id)

    w.clock.advance(4)  # due in 5 s: a job that fired early finds nothing to do
    assert await deliver(w, sender).execute(delivery_id) is None
    assert len(sender.sent) == 1


async def test_each_retry_waits_its_own_delay_and_the_last_failure_is_final() -> None:
    w = World()
    delivery_id = await delivery(w, await endpoint(w))
    sender = FakeWebhookSender(ERROR, ERROR, ERROR)
    attempt = deliver(w, sender)

    assert await attempt.execute(delivery_id) is DeliveryStatus.PENDING
    w.clock.advance(5)
    assert await attempt.execute(delivery_id) is DeliveryStatus.PENDING
    assert stored(w, delivery_id).next_attempt_at == w.clock.now() + timedelta(seconds=60)
    w.clock.advance(60)
    assert await attempt.execute(delivery_id) is DeliveryStatus.FAILED

    row = stored(w, delivery_id)
    assert (row.attempt_count, row.next_attempt_at) == (3, None)
    assert row.finished_at == w.clock.now()
    assert w.webhook_jobs.jobs == [(delivery_id, 1, 5), (delivery_id, 2, 60)]  # no 4th
    w.clock.advance(3600)
    assert await attempt.execute(delivery_id) is None  # a dead letter is not tried again


async def test_success_ends_the_delivery() -> None:
    w = World()
    delivery_id = await delivery(w, await endpoint(w))
    sender = FakeWebhookSender(ERROR, OK)
    attempt = deliver(w, sender)
    await attempt.execute(delivery_id)
    w.clock.advance(5)

    assert await attempt.execute(delivery_id) is DeliveryStatus.SUCCEEDED

    row = stored(w, delivery_id)
    assert (row.status, row.last_status_code, row.next_attempt_at) == (
        DeliveryStatus.SUCCEEDED,
        204,
        None,
    )
    assert len(w.webhook_jobs.jobs) == 1  # only the retry after the 500


async def test_retry_delays_are_spread_by_the_jitter() -> None:
    w = World()
    policy = RetryPolicy(schedule=(0, 100), jitter=0.1)
    late, early = await delivery(w, await endpoint(w)), await delivery(w, await endpoint(w))
    sender = FakeWebhookSender(ERROR, ERROR)
    await DeliverWebhook(
        w.db.uow, w.clock, sender, w.webhook_jobs, policy, rand=lambda: 1.0
    ).execute(late)
    await DeliverWebhook(
        w.db.uow, w.clock, sender, w.webhook_jobs, policy, rand=lambda: 0.0
    ).execute(early)
    assert [delay for _, _, delay in w.webhook_jobs.jobs] == [pytest.approx(110), pytest.approx(90)]


async def test_a_network_error_is_retried() -> None:
    w = World()
    delivery_id = await delivery(w, await endpoint(w))
    timeout = SendResult(None, 10_000.0, "timed out")
    assert await deliver(w, FakeWebhookSender(timeout)).execute(delivery_id) is (
        DeliveryStatus.PENDING
    )
    assert stored(w, delivery_id).last_error == "timed out"


async def test_a_410_fails_at_once_and_disables_the_endpoint() -> None:
    w = World()
    endpoint_id = await endpoint(w)
    gone, waiting = await delivery(w, endpoint_id), await delivery(w, endpoint_id)
    sender = FakeWebhookSender(GONE)

    assert await deliver(w, sender).execute(gone) is DeliveryStatus.FAILED

    assert w.webhook_jobs.jobs == []  # no retry
    assert stored(w, gone).last_error == GONE_REASON
    disabled = w.db.committed.endpoints[endpoint_id]
    assert (disabled.enabled, disabled.disabled_reason) == (False, GONE_REASON)
    # The endpoint's other deliveries are not sent any more.
    assert await deliver(w, sender).execute(waiting) is DeliveryStatus.FAILED
    assert len(sender.sent) == 1
    assert "disabled" in (stored(w, waiting).last_error or "")
    with pytest.raises(Conflict, match="disabled"):
        await Redeliver(w.db.uow, w.clock, w.webhook_jobs).execute(
            gone, owner="ann", actor="key:ann"
        )


async def test_a_redelivery_starts_the_retry_schedule_afresh() -> None:
    w = World()
    delivery_id = await delivery(w, await endpoint(w))
    sender = FakeWebhookSender(ERROR, ERROR, ERROR, ERROR)
    attempt = deliver(w, sender)
    for wait in (0, 5, 60):
        w.clock.advance(wait)
        await attempt.execute(delivery_id)
    assert stored(w, delivery_id).status is DeliveryStatus.FAILED

    with pytest.raises(Conflict):  # not while a delivery is still under way
        await Redeliver(w.db.uow, w.clock, w.webhook_jobs).execute(
            await delivery(w, await endpoint(w)), owner="ann", actor="key:ann"
        )
    again = await Redeliver(w.db.uow, w.clock, w.webhook_jobs).execute(
        delivery_id, owner="ann", actor="key:ann"
    )
    assert again.status is DeliveryStatus.PENDING
    assert await attempt.execute(delivery_id) is DeliveryStatus.PENDING  # retried, not dead

    row = stored(w, delivery_id)
    assert row.attempt_count == 4  # numbering goes on
    assert row.next_attempt_at == w.clock.now() + timedelta(seconds=5)  # the round's first delay


async def _settle() -> None:
    for _ in range(50):  # let the started attempts reach the sender
        await asyncio.sleep(0)


class StallingSender:
    """Holds every attempt until ``answer`` is set, then answers 204."""

    def __init__(self) -> None:
        self.answer = asyncio.Event()
        self.sent: list[str] = []

    async def send(self, url: str, headers: dict[str, str], body: bytes) -> SendResult:
        self.sent.append(url)
        await self.answer.wait()
        return OK


async def test_a_receiver_at_its_in_flight_limit_gets_no_more_and_no_attempt_is_spent() -> None:
    w = World()
    hook = await endpoint(w)
    first, second = await delivery(w, hook), await delivery(w, hook)
    other = await delivery(w, await endpoint(w))  # another receiver: not held back
    sender = StallingSender()
    limited = DeliverWebhook(
        w.db.uow, w.clock, sender, w.webhook_jobs, POLICY, rand=lambda: 0.5,
        in_flight=InFlightLimit(1), hold=2.0,
    )  # fmt: skip

    running = asyncio.create_task(limited.execute(first))
    await _settle()
    assert await limited.execute(second) is DeliveryStatus.PENDING
    row = stored(w, second)
    assert (row.status, row.attempt_count, row.attempts) == (DeliveryStatus.PENDING, 0, [])
    assert row.next_attempt_at == w.clock.now() + timedelta(seconds=2)
    assert w.webhook_jobs.jobs == [(second, 0, 2.0)]  # its own job, 2 s on
    other_run = asyncio.create_task(limited.execute(other))
    await _settle()
    assert len(sender.sent) == 2  # the first and the other receiver's, not the second

    sender.answer.set()
    assert await running is DeliveryStatus.SUCCEEDED
    assert await other_run is DeliveryStatus.SUCCEEDED
    assert await limited.execute(second) is None  # not due yet
    w.clock.advance(2)
    assert await limited.execute(second) is DeliveryStatus.SUCCEEDED
    assert [a.number for a in stored(w, second).attempts] == [1]


def test_the_pause_starts_at_the_threshold_and_doubles_up_to_the_longest() -> None:
    breaker = CircuitBreaker(threshold=3, backoff=30, max_backoff=100)
    assert [breaker.pause(n) for n in range(1, 7)] == [None, None, 30, 60, 100, 100]


async def test_an_attempt_over_the_limit_waits_for_the_receiver_s_slot_within_the_wait() -> None:
    w = World()
    hook = await endpoint(w)
    first, second, third = [await delivery(w, hook) for _ in range(3)]
    sender = StallingSender()
    limited = DeliverWebhook(
        w.db.uow, w.clock, sender, w.webhook_jobs, POLICY, rand=lambda: 0.5,
        in_flight=InFlightLimit(1), hold=2.0, slot_wait=30.0,
    )  # fmt: skip

    running = asyncio.create_task(limited.execute(first))
    await _settle()
    waiting = asyncio.create_task(limited.execute(second))  # waits: one waiter per slot
    await _settle()
    assert await limited.execute(third) is DeliveryStatus.PENDING  # no room to wait: held
    assert stored(w, third).attempt_count == 0
    assert sender.sent == ["https://hooks.example.com/in"]  # only the first so far

    sender.answer.set()
    assert await running is DeliveryStatus.SUCCEEDED
    assert await waiting is DeliveryStatus.SUCCEEDED  # sent as the slot freed, not held
    assert [a.number for a in stored(w, second).attempts] == [1]
    assert w.webhook_jobs.jobs == [(third, 0, 2.0)]  # only the third went back to the queue


async def test_a_wait_for_a_slot_that_runs_out_gives_the_delivery_back() -> None:
    limit = InFlightLimit(1)
    assert await limit.acquire("r", wait=0.01)
    assert not await limit.acquire("r", wait=0.01)  # the slot stays taken: wait is over
    limit.release("r")
    assert limit.in_flight("r") == 0
    assert await limit.acquire("r", wait=0.01)  # nothing was left held by the waiter


def test_a_delivery_given_back_waits_as_long_as_the_receiver_s_backlog_takes_to_drain() -> None:
    now = [100.0]
    limit = InFlightLimit(2, monotonic=lambda: now[0])
    assert limit.hold_for("r", 1.0) == 1.0  # pace unknown yet: the base hold
    limit.attempted("r", 0.5)  # half a second per attempt, two at a time
    waits = [limit.hold_for("r", 1.0) for _ in range(9)]
    assert waits[:3] == [1.0, 1.0, 1.0]  # 1 to 3 given back ahead: drained within 1 s
    assert waits[-1] == 9 * 0.5 / 2  # nine ahead of the last, two at a time
    assert limit.hold_for("other", 1.0) == 1.0  # another receiver's backlog is its own
    now[0] += 60  # all of them came back: nothing ahead any more
    assert limit.hold_for("r", 1.0) == 1.0
    limit.attempted("slow", 15.0)
    assert [limit.hold_for("slow", 1.0) for _ in range(6)][-1] == 30.0  # MAX_HOLD at most
