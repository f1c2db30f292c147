"""Per-endpoint fairness: at most ``limit`` attempts in flight to one receiver.

The receiver of a delivery is its registered endpoint, or, for a task's own
``webhook_url``, the URL's origin (scheme, host and port). The count is kept per
worker process (each process holds its own webhook slots). An attempt over the limit
is not made and not counted: the delivery waits a moment and its slot goes to
another receiver's delivery.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit

from chatsys.domain.webhooks.model import OutgoingDelivery


def receiver_of(outgoing: OutgoingDelivery) -> str:
    if outgoing.endpoint_id is not None:
        return f"endpoint:{outgoing.endpoint_id}"
    parts = urlsplit(outgoing.url)
    return f"origin:{parts.scheme}://{parts.netloc.rpartition('@')[2].lower()}"


class InFlightLimit:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the per-endpoint limit must be at least 1")
        self._limit = limit
        self._in_flight: Counter[str] = Counter()

    def try_acquire(self, receiver: str) -> bool:
        if self._in_flight[receiver] >= self._limit:
            return False
        self._in_flight[receiver] += 1
        return True

    def release(self, receiver: str) -> None:
        self._in_flight[receiver] -= 1
        if self._in_flight[receiver] <= 0:
            del self._in_flight[receiver]

    def in_flight(self, receiver: str) -> int:
        return self._in_flight[receiver]
