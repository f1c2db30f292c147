"""Sending webhook deliveries, finding the lost ones, and the delivery log.

Rules:
- Postgres is the source of truth: a delivery is a row; a job is only a nudge.
  An attempt leases the row (``delivering`` until the lease ends), so one attempt
  runs at a time, and a worker dying mid-attempt only delays the next one;
- each attempt is signed afresh (new ``webhook-timestamp`` and signature), always
  with the same ``webhook-id``; during a secret rotation with both secrets;
- a 2xx answer is success; anything else (3xx included: redirects are never
  followed), a network error or a timeout is a failed attempt, retried on the
  retry schedule with jitter; after the last attempt the delivery has failed (dead
  letter); an address the service must not reach fails it at once; a 410 Gone fails
  it at once and disables its endpoint;
- a delivery whose endpoint was deleted or disabled is not sent;
- the relay (every worker's maintenance loop) re-sends the jobs of deliveries that
  are overdue or whose lease expired, so deliveries survive worker and Redis
  restarts; jobs are idempotent (one job id per attempt, and the lease).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID

from chatsys.domain.access.model import AuditEntry
from chatsys.domain.shared.clock import Clock
from chatsys.domain.shared.errors import Conflict, NotFound
from chatsys.domain.shared.idempotency import IdempotentRequest, claim_key
from chatsys.domain.shared.pagination import Page, cut_page, decode_cursor
from chatsys.domain.shared.uow import Factory
from chatsys.domain.webhooks.fairness import CircuitBreaker, InFlightLimit, receiver_of
from chatsys.domain.webhooks.model import (
    DeliveryAttempt,
    DeliveryStatus,
    OutgoingDelivery,
    RetryPolicy,
    SendResult,
    WebhookDelivery,
    signed_headers,
)
from chatsys.domain.webhooks.ports import (
    AttemptRecord,
    WebhookQueue,
    WebhookSender,
    WebhooksUnitOfWork,
)

GONE_REASON = "the receiver answered 410 Gone"


class DeliverWebhook:
    """One attempt of one delivery (the arq job's body).

    With ``in_flight`` (``chatsys.domain.webhooks.fairness``), a receiver that already
    has its share of attempts under way gets no more: the attempt waits up to
    ``slot_wait`` s for one of the receiver's slots (when few enough wait already), else
    the claimed delivery is given back unattempted (no attempt spent), due again
    ``hold`` seconds later, or later when the receiver's backlog in this process takes
    longer to drain (``InFlightLimit.hold_for``; with jitter), and the job ends,
    freeing its slot for another receiver's delivery. With
    ``breaker``, a delivery to a paused endpoint is given back the same way until its
    pause is over, and each attempt's outcome opens or closes the endpoint's circuit."""

    def __init__(
        self,
        uow: Factory[WebhooksUnitOfWork],
        clock: Clock,
        sender: WebhookSender,
        queue: WebhookQueue,
        retry: RetryPolicy | None = None,
        *,
        lease: float = 60.0,
        rand: Callable[[], float] = random.random,
        in_flight: InFlightLimit | None = None,
        hold: float = 1.0,
        breaker: CircuitBreaker | None = None,
        slot_wait: float = 0.0,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._sender = sender
        self._queue = queue
        self._retry = retry or RetryPolicy()
        self._lease = lease
        self._rand = rand
        self._in_flight = in_flight
        self._hold = hold
        self._breaker = breaker
        self._slot_wait = slot_wait

    async def execute(self, delivery_id: UUID) -> DeliveryStatus | None:
        """The delivery's status after this attempt; None when it was not ours to try."""
        async with self._uow() as uow:
            outgoing = await uow.deliveries.claim(delivery_id, lease=self._lease)
            await uow.commit()
        if outgoing is None:
            return None
        paused_until = await self._paused(outgoing)
        if paused_until is not None:
            wait = (paused_until - self._clock.now()).total_seconds()
            await self._hold_back(outgoing, max(wait, 0.0) + self._hold * self._rand())
            return DeliveryStatus.PENDING
        if self._in_flight is None:
            return await self._make(outgoing)
        receiver = receiver_of(outgoing)
        limit = self._in_flight
        if not await limit.acquire(receiver, wait=self._slot_wait):
            await self._hold_back(
                outgoing, limit.hold_for(receiver, self._hold, spread=0.5 + self._rand())
            )
            return DeliveryStatus.PENDING
        started = time.monotonic()
        try:
            return await self._make(outgoing)
        finally:
            limit.attempted(receiver, time.monotonic() - started)  # the slot's time
            limit.release(receiver)

    async def _paused(self, outgoing: OutgoingDelivery) -> datetime | None:
        if self._breaker is None or outgoing.endpoint_id is None or outgoing.refusal:
            return None
        async with self._uow() as uow:
            until = await uow.webhooks.admit(
                outgoing.endpoint_id, at=self._clock.now(), probe_lease=self._breaker.probe_lease
            )
            await uow.commit()
        return until

    async def _hold_back(self, outgoing: OutgoingDelivery, delay: float) -> None:
        async with self._uow() as uow:
            await uow.deliveries.postpone(
                outgoing.id, at=self._clock.now() + timedelta(seconds=delay)
            )
            await uow.commit()
        with contextlib.suppress(Exception):  # the relay sends it once it is overdue
            await self._queue.enqueue_delivery(
                outgoing.id, outgoing.attempt_count, delay=delay, held=True
            )

    async def _make(self, outgoing: OutgoingDelivery) -> DeliveryStatus:
        result = await self._attempt(outgoing)
        now = self._clock.now()
        number = outgoing.attempt_count + 1
        attempt = DeliveryAttempt(number, now, result.status_code, result.latency_ms, result.error)
        delay = None
        if result.ok:
            status = DeliveryStatus.SUCCEEDED
        elif result.retryable:
            delay = self._retry.delay_after(outgoing.round_attempts + 1, self._rand)
            status = DeliveryStatus.FAILED if delay is None else DeliveryStatus.PENDING
        else:
            status = DeliveryStatus.FAILED
        next_at = None if delay is None else now + timedelta(seconds=delay)
        async with self._uow() as uow:
            # The endpoint's row before the delivery's: deleting an endpoint locks them in
            # that order (the endpoint, then its unfinished deliveries), so the other
            # order deadlocks with a delete made while an attempt is being recorded.
            if result.gone and outgoing.endpoint_id is not None:
                await uow.webhooks.disable(outgoing.endpoint_id, reason=GONE_REASON, at=now)
            elif self._breaker is not None and outgoing.endpoint_id and not outgoing.refusal:
                await uow.webhooks.record_outcome(
                    outgoing.endpoint_id, ok=result.ok, at=now, pause=self._breaker.pause
                )
            await uow.deliveries.record(AttemptRecord(outgoing.id, attempt, status, next_at))
            await uow.commit()
        if delay is not None:
            with contextlib.suppress(Exception):  # the relay sends it once it is overdue
                await self._queue.enqueue_delivery(outgoing.id, number, delay=delay)
        return status

    async def _attempt(self, outgoing: OutgoingDelivery) -> SendResult:
        if outgoing.refusal is not None:
            return SendResult(None, 0.0, outgoing.refusal, retryable=False)
        body = outgoing.body.encode()
        timestamp = int(self._clock.now().timestamp())
        headers = signed_headers(outgoing.secrets, outgoing.webhook_id, timestamp, body)
        result = await self._sender.send(outgoing.url, headers, body)
        if result.gone:
            return SendResult(410, result.latency_ms, GONE_REASON, retryable=False)
        return result


class RelayWebhooks:
    """Re-sends the jobs of deliveries that are overdue (their job lost with Redis, or
    never sent) or whose attempt's lease expired (its worker died)."""

    def __init__(
        self,
        uow: Factory[WebhooksUnitOfWork],
        queue: WebhookQueue,
        *,
        grace: float = 2.0,
        redispatch_after: float = 30.0,
    ) -> None:
        self._uow = uow
        self._queue = queue
        self._grace = grace
        self._redispatch_after = redispatch_after

    async def execute(self, *, limit: int = 200) -> int:
        sent: list[UUID] = []
        async with self._uow() as uow:
            due = await uow.deliveries.due(
                grace=self._grace, redispatch_after=self._redispatch_after, limit=limit
            )
            try:
                for delivery_id, attempts in due:
                    await self._queue.enqueue_delivery(delivery_id, attempts, delay=0)
                    sent.append(delivery_id)
            finally:
                # Un-stamp what could not be enqueued, so the next pass tries it again.
                await uow.deliveries.mark_undispatched([d for d, _ in due if d not in sent])
                await uow.commit()
        return len(sent)


class ListDeliveries:
    """The owner's deliveries, newest first, keyset-paginated, each with its attempts."""

    def __init__(self, uow: Factory[WebhooksUnitOfWork]) -> None:
        self._uow = uow

    async def execute(
        self,
        *,
        owner: str,
        limit: int,
        cursor: str | None,
        task_id: UUID | None = None,
        status: DeliveryStatus | None = None,
    ) -> Page[WebhookDelivery]:
        before = decode_cursor(cursor) if cursor else None
        async with self._uow() as uow:
            rows = await uow.deliveries.list_for_owner(
                owner, limit=limit + 1, before=before, task_id=task_id, status=status
            )
        return cut_page(rows, limit)


class GetDelivery:
    def __init__(self, uow: Factory[WebhooksUnitOfWork]) -> None:
        self._uow = uow

    async def execute(self, delivery_id: UUID, *, owner: str) -> WebhookDelivery:
        async with self._uow() as uow:
            found = await uow.deliveries.get(delivery_id, owner=owner)
        if found is None:
            raise NotFound(f"webhook delivery {delivery_id} does not exist")
        return found


class Redeliver:
    """Send a finished delivery again: same body, same ``webhook-id``, a fresh retry
    schedule. A delivery still under way cannot be redelivered (conflict), nor one whose
    endpoint was deleted or is disabled. Audited as ``webhook.redeliver`` in the
    transaction that reschedules it; a refused redelivery is not. Under an
    ``Idempotency-Key`` (``once``) a retry gets the first answer and sends nothing more."""

    def __init__(self, uow: Factory[WebhooksUnitOfWork], clock: Clock, queue: WebhookQueue) -> None:
        self._uow = uow
        self._clock = clock
        self._queue = queue

    async def execute(
        self,
        delivery_id: UUID,
        *,
        owner: str,
        actor: str,
        once: IdempotentRequest[WebhookDelivery] | None = None,
    ) -> WebhookDelivery:
        now = self._clock.now()
        async with self._uow() as uow:
            request = {"delivery_id": delivery_id}
            claim = await claim_key(uow, once, "webhook.redeliver", request, at=now)
            found = await uow.deliveries.get(delivery_id, owner=owner)
            if found is None:
                raise NotFound(f"webhook delivery {delivery_id} does not exist")
            if not found.status.is_final:
                raise Conflict(f"webhook delivery {delivery_id} is still {found.status.value}")
            if found.endpoint_id is not None:
                endpoint = await uow.webhooks.get(found.endpoint_id, owner=owner)
                if endpoint is None:
                    raise Conflict("its webhook endpoint was deleted")
                if not endpoint.enabled:
                    raise Conflict(f"its webhook endpoint is disabled: {endpoint.disabled_reason}")
            was = found.status
            await uow.deliveries.reschedule(delivery_id, at=now)
            found.status = DeliveryStatus.PENDING
            found.next_attempt_at = now
            found.finished_at = None
            await uow.audit.add(
                AuditEntry("webhook.redeliver", actor, target=f"webhook_delivery:{delivery_id}",
                           task_id=found.task_id, details={"was": was.value})
            )  # fmt: skip
            await claim.record(found)
            await uow.commit()
        with contextlib.suppress(Exception):  # the relay sends it
            await self._queue.enqueue_delivery(delivery_id, found.attempt_count, delay=0)
        return found
