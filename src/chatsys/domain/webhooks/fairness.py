"""Per-receiver fairness: at most ``limit`` attempts in flight to one receiver, and a
circuit breaker per registered endpoint.

The receiver of a delivery is its registered endpoint, or, for a task's own
``webhook_url``, the URL's origin (scheme, host and port). The delivery row names it
(``receiver``), and the claim of due deliveries (``chatsys.infra.webhook_slots``)
counts the receiver's leased deliveries across every worker: a receiver that already
has its share of attempts under way gets no more, and its other deliveries wait in
Postgres, untouched, without spending attempts, while the slots go to other receivers.

A registered endpoint also has a circuit breaker (``CircuitBreaker``), kept on its
row so every worker sees it: after ``threshold`` failed attempts in a row it is
paused (``backoff`` s, doubling with each failed probe up to ``max_backoff``); its
deliveries wait without being attempted and without spending attempts; when the
pause is over one attempt goes (the probe: the claim lets one delivery of a paused
endpoint be in flight at a time): a success closes the circuit.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit
from uuid import UUID


def receiver_of(endpoint_id: UUID | None, url: str) -> str:
    if endpoint_id is not None:
        return f"endpoint:{endpoint_id}"
    parts = urlsplit(url)
    return f"origin:{parts.scheme}://{parts.netloc.rpartition('@')[2].lower()}"


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    threshold: int = 5
    backoff: float = 30.0
    max_backoff: float = 600.0

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.backoff <= 0 or self.max_backoff < self.backoff:
            raise ValueError("a circuit breaker needs threshold >= 1, 0 < backoff <= max")

    def pause(self, failures: int) -> float | None:
        """How long an endpoint with ``failures`` failed attempts in a row waits."""
        if failures < self.threshold:
            return None
        return min(self.max_backoff, self.backoff * 2.0 ** min(failures - self.threshold, 30))
