"""Sending webhook deliveries, and the delivery log.

Rules:
- Postgres is the source of truth and the queue: a delivery is a row, due at its
  ``next_attempt_at``; workers' webhook slots (``chatsys.infra.webhook_slots``)
  claim due rows. An attempt leases the row (``delivering`` until the lease ends), so
  one attempt runs at a time, and a worker dying mid-attempt only delays the next one
  until its lease ends;
- each attempt is signed afresh (new ``webhook-timestamp`` and signature), always
  with the same ``webhook-id``; during a secret rotation with both secrets;
- a 2xx answer is success; anything else (3xx included: redirects are never
  followed), a network error or a timeout is a failed attempt, retried on the
  retry schedule with jitter; after the last attempt the delivery has failed (dead
  letter); an address the service must not reach fails it at once; a 410 Gone fails
  it at once and disables its endpoint;
- a delivery whose endpoint was deleted or disabled is not sent;
- Redis plays no part: deliveries keep their schedule through Redis outages, and
  worker restarts only end leases early (a stopping worker gives its claims back).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import timedelta
from uuid import UUID

from chatsys.domain.access.model import AuditEntry
from chatsys.domain.shared.clock import Clock
from chatsys.domain.shared.errors import Conflict, NotFound
from chatsys.domain.shared.idempotency import IdempotentRequest, claim_key
from chatsys.domain.shared.pagination import Page, cut_page, decode_cursor
from chatsys.domain.shared.uow import Factory
from chatsys.domain.webhooks.fairness import CircuitBreaker
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
    DeliveryNudge,
    WebhookSender,
    WebhooksUnitOfWork,
)

GONE_REASON = "the receiver answered 410 Gone"


class DeliverWebhook:
    """Claims due deliveries and makes one attempt of each (a worker's webhook slots,
    ``chatsys.infra.webhook_slots``, run them side by side).

    A claim leases each delivery for ``lease`` s and leaves alone the deliveries of a
    receiver that already has ``per_receiver`` under way (``fairness``). With
    ``breaker``, each attempt's outcome opens or closes the endpoint's circuit (the
    claim leaves a paused endpoint's deliveries alone)."""

    def __init__(
        self,
        uow: Factory[WebhooksUnitOfWork],
        clock: Clock,
        sender: WebhookSender,
        retry: RetryPolicy | None = None,
        *,
        lease: float = 60.0,
        per_receiver: int = 8,
        rand: Callable[[], float] = random.random,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if per_receiver < 1:
            raise ValueError("the per-receiver limit must be at least 1")
        self._uow = uow
        self._clock = clock
        self._sender = sender
        self._retry = retry or RetryPolicy()
        self._lease = lease
        self._per_receiver = per_receiver
        self._rand = rand
        self._breaker = breaker

    async def claim(self, limit: int) -> Sequence[OutgoingDelivery]:
        """Up to ``limit`` due deliveries, leased for one attempt each."""
        async with self._uow() as uow:
            claimed = await uow.deliveries.claim_due(
                limit=limit, per_receiver=self._per_receiver, lease=self._lease
            )
            await uow.commit()
        return claimed

    async def release(self, delivery_ids: Sequence[UUID]) -> None:
        """Claimed deliveries given back unattempted (the worker is stopping)."""
        if delivery_ids:
            async with self._uow() as uow:
                await uow.deliveries.release(delivery_ids)
                await uow.commit()

    async def attempt(self, outgoing: OutgoingDelivery) -> AttemptRecord:
        """Send it (or refuse it) and decide what comes next; nothing recorded yet."""
        result = await self._send(outgoing)
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
        return AttemptRecord(outgoing.id, attempt, status, next_at, gone=result.gone)

    async def record(self, outgoing: OutgoingDelivery, outcome: AttemptRecord) -> None:
        await self.record_all([(outgoing, outcome)])

    async def record_all(
        self, finished: Sequence[tuple[OutgoingDelivery, AttemptRecord]], *, claim: int = 0
    ) -> Sequence[OutgoingDelivery]:
        """Finished attempts (of different deliveries), in one transaction; with
        ``claim``, up to that many due deliveries claimed in the same transaction."""
        if not finished and claim < 1:
            return []
        # The endpoints' rows before the deliveries': deleting an endpoint locks them in
        # that order (the endpoint, then its unfinished deliveries), so the other order
        # deadlocks with a delete made while an attempt is being recorded. In the order of
        # their ids: two batches lock shared endpoints the same way.
        touched = sorted(
            (f for f in finished if self._touches_endpoint(*f)), key=lambda f: str(f[0].endpoint_id)
        )
        async with self._uow() as uow:
            if touched and claim > 0:
                # Claims first: a claim's lock is always taken before any row's.
                await uow.deliveries.lock_claims()
            for outgoing, outcome in touched:
                await self._endpoint_outcome(uow, outgoing, outcome)
            # One round trip: the record frees the slots, the claim (when asked) fills them.
            claimed = await uow.deliveries.record_and_claim(
                [outcome for _, outcome in finished],
                limit=claim,
                per_receiver=self._per_receiver,
                lease=self._lease,
            )
            await uow.commit()
        return claimed

    def _touches_endpoint(self, outgoing: OutgoingDelivery, outcome: AttemptRecord) -> bool:
        """Whether this attempt's outcome changes its endpoint: a 410 disables it; with a
        breaker, a failure counts and a success closes a failing endpoint's circuit."""
        if outgoing.endpoint_id is None:
            return False
        if outcome.gone:
            return True
        ok = outcome.status is DeliveryStatus.SUCCEEDED
        return (
            self._breaker is not None
            and not outgoing.refusal
            and (not ok or outgoing.endpoint_failing)  # a success with nothing to close
        )

    async def _endpoint_outcome(
        self, uow: WebhooksUnitOfWork, outgoing: OutgoingDelivery, outcome: AttemptRecord
    ) -> None:
        """What ``_touches_endpoint`` found: the endpoint disabled, or its circuit's count."""
        at = outcome.attempt.attempted_at
        if outgoing.endpoint_id is None:
            return
        if outcome.gone:
            await uow.webhooks.disable(outgoing.endpoint_id, reason=GONE_REASON, at=at)
        elif self._breaker is not None:
            ok = outcome.status is DeliveryStatus.SUCCEEDED
            await uow.webhooks.record_outcome(
                outgoing.endpoint_id, ok=ok, at=at, pause=self._breaker.pause
            )

    async def execute(self, outgoing: OutgoingDelivery) -> AttemptRecord:
        outcome = await self.attempt(outgoing)
        await self.record(outgoing, outcome)
        return outcome

    async def _send(self, outgoing: OutgoingDelivery) -> SendResult:
        if outgoing.refusal is not None:
            return SendResult(None, 0.0, outgoing.refusal, retryable=False)
        body = outgoing.body.encode()
        timestamp = int(self._clock.now().timestamp())
        headers = signed_headers(outgoing.secrets, outgoing.webhook_id, timestamp, body)
        result = await self._sender.send(outgoing.url, headers, body)
        if result.gone:
            return SendResult(410, result.latency_ms, GONE_REASON, retryable=False)
        return result


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

    def __init__(
        self, uow: Factory[WebhooksUnitOfWork], clock: Clock, nudge: DeliveryNudge
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._nudge = nudge

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
        self._nudge.due()
        return found
