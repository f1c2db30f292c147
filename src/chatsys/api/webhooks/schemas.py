"""Request and response models of the webhook endpoints and the delivery log."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictFloat

from chatsys.api.pagination import PageOut
from chatsys.api.text import CONTROL_OR_SPACE, Line, LineOrNone, TextOrNone, stated
from chatsys.domain.webhooks.endpoints import DESCRIPTION_MAX, MAX_ROTATION_GRACE
from chatsys.domain.webhooks.model import DeliveryAttempt, WebhookDelivery, WebhookEndpoint

WebhookEventName = Literal["task.succeeded", "task.failed", "task.cancelled", "approval.requested"]
DeliveryStatusName = Literal["pending", "delivering", "succeeded", "failed"]

# The URL rules a schema can state (http or https, no space or control character); the
# host's own rules (a name or a public address, what it resolves to) are checked by the
# service (domain/webhooks/urls.py) and named in its 422.
_URL = stated(format="uri", pattern=f"^[Hh][Tt][Tt][Pp][Ss]?://[^{CONTROL_OR_SPACE}]+$")
WebhookUrl = Annotated[Line, _URL]
WebhookUrlOrNone = Annotated[LineOrNone, _URL]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl = Field(max_length=2048, examples=["https://example.com/hooks/chatsys"])
    event_types: list[WebhookEventName] | None = Field(
        default=None,
        min_length=1,
        max_length=4,
        description="default: task.succeeded, task.failed, task.cancelled",
    )
    description: TextOrNone = Field(default=None, max_length=DESCRIPTION_MAX)


class CircuitOut(BaseModel):
    state: Literal["closed", "open"] = Field(
        description="open: paused after failed attempts in a row; its deliveries wait, "
        "unattempted, until paused_until, when one attempt probes it"
    )
    consecutive_failures: int = Field(description="failed attempts since the last success")
    paused_until: datetime | None


class WebhookOut(BaseModel):
    id: UUID
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    disabled_at: datetime | None
    disabled_reason: str | None
    previous_secret_expires_at: datetime | None = Field(
        description="during a rotation: until when the previous secret also signs"
    )
    created_at: datetime
    circuit: CircuitOut

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> WebhookOut:
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            description=endpoint.description,
            event_types=list(endpoint.event_types),
            enabled=endpoint.enabled,
            disabled_at=endpoint.disabled_at,
            disabled_reason=endpoint.disabled_reason,
            previous_secret_expires_at=endpoint.previous_secret_expires_at,
            created_at=endpoint.created_at,
            circuit=CircuitOut(
                state="closed" if endpoint.paused_until is None else "open",
                consecutive_failures=endpoint.consecutive_failures,
                paused_until=endpoint.paused_until,
            ),
        )


class WebhookWithSecretOut(WebhookOut):
    secret: str = Field(description="whsec_...: shown only in this answer; keep it safe")

    @classmethod
    def revealed(cls, endpoint: WebhookEndpoint) -> WebhookWithSecretOut:
        return cls(**WebhookOut.of(endpoint).__dict__, secret=endpoint.secret)


class WebhookPageOut(PageOut[WebhookOut]):
    """A page of webhook endpoints, newest first."""


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: StrictFloat | None = Field(
        default=None,
        ge=0,
        le=MAX_ROTATION_GRACE,
        description="how long the current secret keeps signing beside the new one "
        "(default: the service's rotation grace, 24 h)",
    )


class AttemptOut(BaseModel):
    number: int
    attempted_at: datetime
    status_code: int | None
    latency_ms: float
    error: str | None

    @classmethod
    def of(cls, attempt: DeliveryAttempt) -> AttemptOut:
        return cls(
            number=attempt.number,
            attempted_at=attempt.attempted_at,
            status_code=attempt.status_code,
            latency_ms=attempt.latency_ms,
            error=attempt.error,
        )


class DeliveryOut(BaseModel):
    id: UUID
    webhook_id: str = Field(description="the webhook-id header: the same on every attempt")
    task_id: UUID
    endpoint_id: UUID | None = Field(description="null: the task's own webhook_url")
    event_type: str
    url: str
    status: DeliveryStatusName
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    payload: dict[str, Any] = Field(description="the body sent on every attempt")
    attempts: list[AttemptOut]

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> DeliveryOut:
        return cls(
            id=delivery.id,
            webhook_id=delivery.webhook_id,
            task_id=delivery.task_id,
            endpoint_id=delivery.endpoint_id,
            event_type=delivery.event_type,
            url=delivery.url,
            status=delivery.status.value,
            attempt_count=delivery.attempt_count,
            next_attempt_at=delivery.next_attempt_at,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            finished_at=delivery.finished_at,
            payload=json.loads(delivery.body),
            attempts=[AttemptOut.of(a) for a in delivery.attempts],
        )


class DeliveryPageOut(PageOut[DeliveryOut]):
    """A page of webhook deliveries, newest first."""
