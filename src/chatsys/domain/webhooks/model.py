"""Webhooks: endpoints, deliveries, their attempts, Standard Webhooks signing, the retry policy.

Signing follows the Standard Webhooks specification: a secret is ``whsec_`` and the
base64 of its key; a message is signed as ``v1,<base64 HMAC-SHA256 of
"{webhook-id}.{webhook-timestamp}.{body}">``; several signatures (during a secret
rotation) are separated by spaces. Every attempt is signed afresh (new timestamp),
always with the same ``webhook-id``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from chatsys.domain.shared.errors import InvalidInput
from chatsys.domain.tasks.model import EventType

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_BYTES = 32

# Events a webhook can carry. approval.requested is part of the vocabulary so an endpoint
# can subscribe to it; the task events are what a task's own webhook_url receives.
WEBHOOK_EVENTS: tuple[str, ...] = (
    EventType.TASK_SUCCEEDED.value,
    EventType.TASK_FAILED.value,
    EventType.TASK_CANCELLED.value,
    EventType.APPROVAL_REQUESTED.value,
)
DEFAULT_ENDPOINT_EVENTS: tuple[str, ...] = WEBHOOK_EVENTS[:3]

# The Standard Webhooks schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h,
# 20 h and 24 h (seconds after the previous attempt).
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (
    0,
    5,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    14 * 3600,
    20 * 3600,
    24 * 3600,
)


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt
    DELIVERING = "delivering"  # an attempt is under way (leased by a worker)
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # dead letter: every attempt failed, or it cannot be sent

    @property
    def is_final(self) -> bool:
        return self in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED)


# ---------------------------------------------------------------- secrets and signatures


def new_secret() -> str:
    """A fresh signing secret, ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret."""
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("a webhook secret must be whsec_ followed by base64") from None
    if not key:
        raise InvalidInput("a webhook secret must not be empty")
    return key


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``{id}.{timestamp}.{body}``."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    secrets_: Sequence[str], webhook_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers; one signature per secret, space-separated."""
    if not secrets_:
        raise ValueError("at least one secret is needed to sign")
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, webhook_id, timestamp, body) for s in secrets_),
    }


def new_webhook_id(delivery_id: UUID) -> str:
    return f"msg_{delivery_id.hex}"


# ---------------------------------------------------------------- retries


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When each attempt happens: ``schedule[n]`` seconds after attempt ``n`` (the first
    entry is the delay of the first attempt), each delay spread by +/- ``jitter``
    (a fraction) so that many failing deliveries do not retry in lockstep. After
    ``len(schedule)`` attempts the delivery has failed."""

    schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if not self.schedule:
            raise ValueError("the retry schedule needs at least one entry")
        if any(d < 0 for d in self.schedule):
            raise ValueError("retry delays must not be negative")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")

    @property
    def max_attempts(self) -> int:
        return len(self.schedule)

    def first_delay(self) -> float:
        return self.schedule[0]

    def delay_after(self, attempts_made: int, rand: Callable[[], float]) -> float | None:
        """Seconds until the next attempt after ``attempts_made`` failed ones; None when
        that was the last."""
        if attempts_made >= len(self.schedule):
            return None
        base = self.schedule[attempts_made]
        return max(0.0, base * (1 + self.jitter * (2 * rand() - 1)))


# ---------------------------------------------------------------- entities


@dataclass(slots=True)
class WebhookEndpoint:
    """A URL an owner registered for some event types, with its signing secret. During a
    rotation the previous secret still signs until ``previous_secret_expires_at``."""

    id: UUID
    owner: str
    url: str
    secret: str = field(repr=False)
    event_types: tuple[str, ...]
    created_at: datetime
    description: str | None = None
    previous_secret: str | None = field(default=None, repr=False)
    previous_secret_expires_at: datetime | None = None
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    consecutive_failures: int = 0  # failed attempts since the last success
    paused_until: datetime | None = None  # its circuit is open: no attempt before then

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None

    def signing_secrets(self, now: datetime) -> tuple[str, ...]:
        if self.previous_secret is not None and (
            self.previous_secret_expires_at is None or self.previous_secret_expires_at > now
        ):
            return (self.secret, self.previous_secret)
        return (self.secret,)


def check_event_types(names: Iterable[str]) -> tuple[str, ...]:
    """Known webhook event names, de-duplicated in the vocabulary's order."""
    wanted = list(names)
    if not wanted:
        raise InvalidInput("event_types must name at least one event")
    unknown = sorted({n for n in wanted if n not in WEBHOOK_EVENTS})
    if unknown:
        raise InvalidInput(
            f"unknown event type(s): {', '.join(unknown)}; known: {', '.join(WEBHOOK_EVENTS)}"
        )
    return tuple(n for n in WEBHOOK_EVENTS if n in wanted)


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    number: int
    attempted_at: datetime
    status_code: int | None
    latency_ms: float
    error: str | None


@dataclass(slots=True)
class WebhookDelivery:
    """One message to one destination: a registered endpoint, or the task's webhook_url
    (``endpoint_id`` None). ``body`` is the exact JSON sent on every attempt."""

    id: UUID
    owner: str
    task_id: UUID
    webhook_id: str
    event_type: str
    url: str
    body: str
    status: DeliveryStatus
    created_at: datetime
    next_attempt_at: datetime | None
    endpoint_id: UUID | None = None
    attempt_count: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    finished_at: datetime | None = None
    attempts: list[DeliveryAttempt] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OutgoingDelivery:
    """A delivery claimed for one attempt, with what it is signed with. ``refusal`` says
    why it must not be sent at all (its endpoint was deleted or disabled)."""

    id: UUID
    webhook_id: str
    url: str
    body: str
    endpoint_id: UUID | None
    attempt_count: int  # attempts made before this one, in all
    round_attempts: int  # attempts made since it was (re)scheduled
    secrets: tuple[str, ...] = field(repr=False)
    refusal: str | None = None
    # The endpoint's failed attempts in a row (or a pause on it) when it was claimed:
    # a success then has a circuit to close.
    endpoint_failing: bool = False


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one HTTP attempt came to. ``retryable`` False ends the delivery (a refused
    address, 410 Gone); ``gone`` also disables the endpoint."""

    status_code: int | None
    latency_ms: float
    error: str | None = None
    retryable: bool = True

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410
