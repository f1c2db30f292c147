"""Per-endpoint fairness: at most ``limit`` attempts in flight to one receiver.

The receiver of a delivery is its registered endpoint, or, for a task's own
``webhook_url``, the URL's origin (scheme, host and port). The count is kept per
worker process (each process holds its own webhook slots). An attempt over the limit
is not made and not counted: the delivery waits a moment and its slot goes to
another receiver's delivery. How long it waits grows with this process' backlog for the receiver
(``hold_for``): the deliveries it already gave back and those waiting, times the
receiver's measured time per attempt, over the limit (at most ``MAX_HOLD`` s), so a
delivery comes back about when a slot can be its turn instead of every second.

A registered endpoint also has a circuit breaker (``CircuitBreaker``), kept on its
row so every worker sees it: after ``threshold`` failed attempts in a row it is
paused (``backoff`` s, doubling with each failed probe up to ``max_backoff``); its
deliveries wait without being attempted and without spending attempts; when the
pause is over one attempt goes (the probe): a success closes the circuit.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from chatsys.domain.webhooks.model import OutgoingDelivery

MAX_HOLD = 30.0  # the longest a delivery given back waits for its receiver's backlog
_SMOOTHING = 0.2  # weight of the latest attempt in a receiver's time per attempt


def receiver_of(outgoing: OutgoingDelivery) -> str:
    if outgoing.endpoint_id is not None:
        return f"endpoint:{outgoing.endpoint_id}"
    parts = urlsplit(outgoing.url)
    return f"origin:{parts.scheme}://{parts.netloc.rpartition('@')[2].lower()}"


class InFlightLimit:
    def __init__(self, limit: int, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        if limit < 1:
            raise ValueError("the per-endpoint limit must be at least 1")
        self._limit = limit
        self._monotonic = monotonic
        self._in_flight: Counter[str] = Counter()
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self._parked: dict[str, list[float]] = {}  # when the ones given back are due (heaps)
        self._pace: dict[str, float] = {}  # smoothed seconds per attempt

    def attempted(self, receiver: str, seconds: float) -> None:
        """An attempt to ``receiver`` took ``seconds``."""
        pace = self._pace.get(receiver)
        self._pace[receiver] = seconds if pace is None else pace + _SMOOTHING * (seconds - pace)

    def hold_for(self, receiver: str, base: float, *, spread: float = 1.0) -> float:
        """Seconds a delivery given back now waits: ``base``, or the time the ones given
        back before it and those waiting take at the receiver's pace, whichever is longer
        (at most ``MAX_HOLD``), times ``spread`` (jitter); it is counted until then."""
        now = self._monotonic()
        parked = self._parked.setdefault(receiver, [])
        while parked and parked[0] <= now:
            heapq.heappop(parked)
        ahead = len(parked) + len(self._waiting.get(receiver, ()))
        drain = ahead * self._pace.get(receiver, 0.0) / self._limit
        delay = min(MAX_HOLD, max(base, drain)) * spread
        heapq.heappush(parked, now + delay)
        return delay

    def try_acquire(self, receiver: str) -> bool:
        if self._in_flight[receiver] >= self._limit:
            return False
        self._in_flight[receiver] += 1
        return True

    async def acquire(self, receiver: str, *, wait: float) -> bool:
        """A slot now, or within ``wait`` s when fewer than ``limit`` attempts already
        wait for this receiver; False otherwise (nothing held)."""
        if self.try_acquire(receiver):
            return True
        queue = self._waiting.setdefault(receiver, deque())
        if wait <= 0 or len(queue) >= self._limit:
            if not queue:
                del self._waiting[receiver]
            return False
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(turn)
        try:
            async with asyncio.timeout(wait):
                await turn
            return True
        except TimeoutError:
            return turn.done() and not turn.cancelled()  # handed over as the wait ended
        except BaseException:
            if turn.done() and not turn.cancelled():
                self.release(receiver)  # handed over, but this attempt is not going
            raise
        finally:
            with contextlib.suppress(ValueError):
                queue.remove(turn)
            if not queue and self._waiting.get(receiver) is queue:
                del self._waiting[receiver]

    def release(self, receiver: str) -> None:
        queue = self._waiting.get(receiver)
        while queue:
            turn = queue.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot goes to the longest waiting attempt
                return
        self._in_flight[receiver] -= 1
        if self._in_flight[receiver] <= 0:
            del self._in_flight[receiver]

    def in_flight(self, receiver: str) -> int:
        return self._in_flight[receiver]


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    threshold: int = 5
    backoff: float = 30.0
    max_backoff: float = 600.0
    probe_lease: float = 60.0  # the probe's hold on the endpoint

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.backoff <= 0 or self.max_backoff < self.backoff:
            raise ValueError("a circuit breaker needs threshold >= 1, 0 < backoff <= max")

    def pause(self, failures: int) -> float | None:
        """How long an endpoint with ``failures`` failed attempts in a row waits."""
        if failures < self.threshold:
            return None
        return min(self.max_backoff, self.backoff * 2.0 ** min(failures - self.threshold, 30))
