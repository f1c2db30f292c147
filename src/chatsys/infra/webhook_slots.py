"""A worker's webhook slots: they claim due deliveries from Postgres and attempt them.

Postgres is the delivery queue (``chatsys.domain.webhooks.delivery``): no job per
attempt, so a backlog costs nothing while it waits. Its rows sit in the table,
untouched, until a slot is free and the claim picks them, oldest due first, at most
``per_receiver`` in flight to one receiver across all workers, none to a paused
endpoint. So a hanging receiver holds its share of slots and no more, and every other
delivery keeps its schedule. The slots claim:

- when attempts end: in the call that records them (a group commit: one transaction
  under way at a time, the next one takes every attempt that ended meanwhile; the
  record and the claim are one round trip, ``chatsys_webhook_record_claim``), for as
  many slots as are free once they are recorded;
- when this process records a delivery or a retry that is due (``due``: the task's
  end in this worker, a retry this worker scheduled), at the due time,
- every ``poll`` s in any case (deliveries written by another process: an API's
  cancel or redelivery, a retry scheduled by a worker that stopped).

An attempt that cannot be recorded because the database went away waits for it and
records then (not sent twice); one that fails otherwise keeps its lease and is tried
again once the lease ends. On ``stop`` the attempts under way get ``grace`` s to end;
the rest are cancelled and their claims given back, due at once, for another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from uuid import UUID

from chatsys.domain.shared.clock import Clock
from chatsys.domain.webhooks.delivery import DeliverWebhook
from chatsys.domain.webhooks.model import OutgoingDelivery
from chatsys.domain.webhooks.ports import AttemptRecord
from chatsys.infra.logging import get_logger
from chatsys.infra.outages import OutageMonitor

log = get_logger(__name__)


class _NoSlots:
    """The nudge of a process without webhook slots (an API): their poll finds it."""

    def due(self, delay: float = 0.0) -> None:
        return None


NO_SLOTS = _NoSlots()


class WebhookSlots:
    def __init__(
        self,
        deliver: DeliverWebhook,
        clock: Clock,
        *,
        slots: int,
        poll: float = 1.0,
        gather: float = 0.005,
        grace: float = 5.0,
        outages: OutageMonitor | None = None,
    ) -> None:
        if slots < 1:
            raise ValueError("webhook slots must be at least 1")
        self._deliver = deliver
        self._clock = clock
        self._slots = slots
        self._poll = poll
        self._gather = gather
        self._grace = grace
        self._outages = outages
        self._running: dict[UUID, asyncio.Task[None]] = {}
        self._finished: list[tuple[OutgoingDelivery, AttemptRecord, asyncio.Future[None]]] = []
        self._recorder: asyncio.Task[None] | None = None
        self._claiming = 0  # slots a claim under way may fill
        self._timers: list[float] = []  # loop times something is due (a heap)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def due(self, delay: float = 0.0) -> None:
        """Something is due in ``delay`` s: claim then (the ``DeliveryNudge`` port)."""
        if delay <= 0:
            self._wake.set()
            return
        with contextlib.suppress(RuntimeError):  # no loop: the poll finds it
            heapq.heappush(self._timers, asyncio.get_running_loop().time() + delay)
            self._wake.set()  # the loop sleeps until the new earliest time

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="chatsys-webhook-slots")

    async def drain(self) -> None:
        """Make the deliveries due now, and those that fall due while they are made (a
        burst run), then stop claiming; later retries are left for the next worker."""
        await self._stop_claiming()
        while True:
            free = self._slots - len(self._running)
            claimed = await self._deliver.claim(free) if free > 0 else []
            for outgoing in claimed:
                self._start(outgoing)
            if not claimed and not self._running:
                return
            if self._running:
                await asyncio.wait(list(self._running.values()), return_when="FIRST_COMPLETED")

    async def stop(self) -> None:
        await self._stop_claiming()
        running = dict(self._running)
        if running:
            await asyncio.wait(running.values(), timeout=self._grace)
        left = [i for i, t in running.items() if not t.done()]
        for delivery_id in left:
            running[delivery_id].cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)
        if self._recorder is not None:
            await asyncio.gather(self._recorder, return_exceptions=True)
        if left:
            try:
                await self._deliver.release(left)
                log.info("chatsys.webhook.released", deliveries=len(left))
            except Exception as exc:  # their leases end and another worker claims them
                log.warning("chatsys.webhook.release_failed", error=str(exc))

    async def _stop_claiming(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _free(self) -> int:
        return self._slots - len(self._running) - self._claiming

    def _start(self, outgoing: OutgoingDelivery) -> None:
        self._running[outgoing.id] = asyncio.create_task(
            self._attempt(outgoing), name=f"chatsys-webhook-{outgoing.id}"
        )

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()  # before the claim: a wake-up during it is not lost
            free = self._free()
            if free > 0:
                self._claiming += free
                try:
                    claimed = await self._deliver.claim(free)
                except Exception as exc:
                    self._claiming -= free
                    await self._after_failure(exc)
                    continue
                self._claiming -= free
                for outgoing in claimed:
                    self._start(outgoing)
            now = loop.time()
            while self._timers and self._timers[0] <= now:
                heapq.heappop(self._timers)
            until = min(self._timers[0], now + self._poll) if self._timers else now + self._poll
            try:
                async with asyncio.timeout_at(until):
                    await self._wake.wait()
            except TimeoutError:
                continue
            await asyncio.sleep(self._gather)

    async def _record(self, outgoing: OutgoingDelivery, outcome: AttemptRecord) -> None:
        """Recorded with the attempts that end meanwhile, in one transaction (a group
        commit: one is under way at a time, and the next takes all that came since)."""
        recorded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._finished.append((outgoing, outcome, recorded))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record_finished())
        await asyncio.shield(recorded)  # a stop waits for the record, it does not undo it

    async def _record_finished(self) -> None:
        while self._finished:
            batch, self._finished = self._finished, []
            failure: Exception | None = None
            while True:
                # The slots these attempts free are claimed again in the same transaction
                # (unless the slots are stopping).
                free = self._free() + len(batch) if self._task is not None else 0
                self._claiming += free
                try:
                    claimed = await self._deliver.record_all(
                        [(o, r) for o, r, _ in batch], claim=free
                    )
                    break
                except Exception as exc:
                    if self._outages is None or self._outages.report(exc) is None:
                        failure = exc
                        break
                    await self._outages.wait_back("database")  # then record them
                finally:
                    self._claiming -= free
            if failure is None:
                for outgoing in claimed:
                    self._start(outgoing)
            for _, _, recorded in batch:
                if recorded.done():
                    continue
                if failure is None:
                    recorded.set_result(None)
                else:
                    recorded.set_exception(failure)

    async def _after_failure(self, exc: Exception) -> None:
        if self._outages is not None and self._outages.report(exc) is not None:
            await self._outages.wait_back("database")
            return
        log.warning("chatsys.webhook.claim_failed", error=str(exc))
        await asyncio.sleep(self._poll)

    async def _attempt(self, outgoing: OutgoingDelivery) -> None:
        try:
            outcome = await self._deliver.attempt(outgoing)
            await self._record(outgoing, outcome)
            if outcome.next_attempt_at is not None:
                self.due((outcome.next_attempt_at - self._clock.now()).total_seconds())
            log.info(
                "chatsys.webhook.attempted",
                delivery_id=str(outgoing.id),
                status=outcome.status.value,
                status_code=outcome.attempt.status_code,
            )
        except Exception:  # its lease ends and a claim tries it again
            log.exception("chatsys.webhook.attempt_failed", delivery_id=str(outgoing.id))
            self._wake.set()  # its slot is free and nothing claimed for it
        finally:
            self._running.pop(outgoing.id, None)
