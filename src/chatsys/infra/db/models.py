"""ORM models. The schema is created by Alembic migrations, never by create_all."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSON, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chatsys.domain.access.model import Role
from chatsys.domain.approvals.model import ApprovalStatus
from chatsys.domain.conversations.model import MessageRole
from chatsys.domain.tasks.model import Priority, StepStatus, TaskStatus
from chatsys.domain.webhooks.model import DeliveryStatus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSONB,
        list[Any]: JSONB,
        uuid.UUID: UUID(as_uuid=True),
        datetime: DateTime(timezone=True),
    }


def _one_of(column: str, values: type[StrEnum]) -> str:
    listed = ", ".join(f"'{v.value}'" for v in values)
    return f"{column} IN ({listed})"


def _created_at() -> Mapped[datetime]:
    return mapped_column(server_default=func.now())


class ConversationRow(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index(None, "owner", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()


class TaskRow(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(_one_of("status", TaskStatus), name="status"),
        CheckConstraint("attempt >= 0", name="attempt_non_negative"),
        Index(None, "owner", "created_at", "id"),
        Index(None, "status"),
        Index(
            "ix_tasks_running_heartbeat",
            "heartbeat_at",
            postgresql_where=text("status IN ('running', 'awaiting_approval')"),
        ),
        Index(
            "uq_tasks_owner_idempotency_key",
            "owner",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    input: Mapped[str] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(32), server_default=TaskStatus.QUEUED.value)
    analysis: Mapped[dict[str, Any] | None]
    plan: Mapped[dict[str, Any] | None]
    result: Mapped[dict[str, Any] | None]
    error: Mapped[dict[str, Any] | None]
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, server_default="0")
    completion_tokens: Mapped[int] = mapped_column(BigInteger, server_default="0")
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6), server_default="0")
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    webhook_secret: Mapped[str | None] = mapped_column(String(100))
    priority: Mapped[str] = mapped_column(String(16), server_default=Priority.NORMAL.value)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    options: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", server_default=text("'{}'::jsonb"))
    attempt: Mapped[int] = mapped_column(Integer, server_default="0")
    last_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    worker_id: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None]
    cancel_requested_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class StepRow(Base):
    __tablename__ = "steps"
    __table_args__ = (CheckConstraint(_one_of("status", StepStatus), name="status"),)

    task_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, server_default="0")
    agent: Mapped[str] = mapped_column(String(100))
    model: Mapped[str | None] = mapped_column(String(200))
    instruction: Mapped[str] = mapped_column(Text)
    depends_on: Mapped[list[Any]] = mapped_column(server_default=text("'[]'::jsonb"))
    status: Mapped[str] = mapped_column(String(32), server_default=StepStatus.PENDING.value)
    output: Mapped[str | None] = mapped_column(Text)
    error: Mapped[dict[str, Any] | None]
    attempt: Mapped[int] = mapped_column(Integer, server_default="0")
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, server_default="0")
    completion_tokens: Mapped[int] = mapped_column(BigInteger, server_default="0")
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6), server_default="0")
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class MessageRow(Base):
    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_one_of("role", MessageRole), name="role"),
        Index(None, "conversation_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    task_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tasks.id", ondelete="SET NULL"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    agent: Mapped[str | None] = mapped_column(String(100))
    content: Mapped[str] = mapped_column(Text)
    tool_calls: Mapped[list[Any] | None]
    created_at: Mapped[datetime] = _created_at()


class TaskEventRow(Base):
    """The durable event log: ``seq`` is gapless per task (assigned under the task's row lock)."""

    __tablename__ = "task_events"
    __table_args__ = (CheckConstraint("seq > 0", name="seq_positive"),)

    task_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created_at()


class TaskOutboxRow(Base):
    """Jobs to enqueue, written in the transaction that makes them due, so a Redis outage
    between commit and enqueue loses nothing: a relay retries what is not dispatched."""

    __tablename__ = "task_outbox"
    __table_args__ = (
        Index(
            "ix_task_outbox_pending",
            "created_at",
            postgresql_where=text("dispatched_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = _created_at()
    dispatched_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")


class AuditLogRow(Base):
    """Append-only audit trail. No foreign keys: records outlive what they describe."""

    __tablename__ = "audit_logs"
    __table_args__ = (
        Index(None, "timestamp"),
        Index(None, "actor", "timestamp"),
        Index(None, "task_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    timestamp: Mapped[datetime] = mapped_column(server_default=func.now())
    event_type: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str | None] = mapped_column(String(200))
    agent: Mapped[str | None] = mapped_column(String(100))
    task_id: Mapped[uuid.UUID | None]
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))


class ApiKeyRow(Base):
    """An API key: only the hash of its secret is kept."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(_one_of("role", Role), name="role"),
        CheckConstraint(_one_of("default_priority", Priority), name="default_priority"),
        Index(None, "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created_at()
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    default_priority: Mapped[str] = mapped_column(
        String(16), server_default=Priority.NORMAL.value
    )  # of the tasks it submits without one


class WebhookEndpointRow(Base):
    """A URL an owner registered for some event types, with its signing secret(s)."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index(None, "owner", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(200))
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None]
    event_types: Mapped[list[Any]] = mapped_column(server_default=text("'[]'::jsonb"))
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default="0")
    paused_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()


class WebhookDeliveryRow(Base):
    """The webhook outbox: one message to one destination, written in the transaction of
    the event that calls for it. ``endpoint_id`` has no foreign key: the delivery log
    outlives a deleted endpoint (NULL: the task's own webhook_url)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(_one_of("status", DeliveryStatus), name="status"),
        Index(None, "owner", "created_at", "id"),
        Index(None, "task_id"),
        Index(None, "endpoint_id"),
        Index(  # in the claim's order: it reads a receiver's due rows, no more
            "ix_webhook_deliveries_due",
            "receiver",
            "next_attempt_at",
            "id",
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_webhook_deliveries_leased",
            "lease_until",
            postgresql_where=text("status = 'delivering'"),
        ),
        Index(
            "ix_webhook_deliveries_in_flight",
            "receiver",
            postgresql_where=text("status = 'delivering'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(64), unique=True)
    owner: Mapped[str] = mapped_column(String(200))
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    endpoint_id: Mapped[uuid.UUID | None]
    # ``endpoint:<id>`` or ``origin:<scheme>://<host[:port]>``: the unit of the limit
    # on attempts in flight (chatsys.domain.webhooks.fairness.receiver_of).
    receiver: Mapped[str] = mapped_column(String(2100))
    event_type: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2048))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default=DeliveryStatus.PENDING.value)
    attempt_count: Mapped[int] = mapped_column(Integer, server_default="0")
    round_attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()
    finished_at: Mapped[datetime | None]


class WebhookAttemptRow(Base):
    """One HTTP attempt of a delivery: when, the answer's status code, latency, error."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index(None, "delivery_id", "number", unique=True),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(server_default=func.now())
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)


class ApprovalRow(Base):
    """A person's decision on one tool call: one per task, step, tool and arguments."""

    __tablename__ = "approvals"
    __table_args__ = (
        CheckConstraint(_one_of("status", ApprovalStatus), name="status"),
        Index(
            "uq_approvals_call",
            "task_id",
            "step",
            "tool",
            "arguments_digest",
            unique=True,
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    step: Mapped[str] = mapped_column(String(100))
    agent: Mapped[str] = mapped_column(String(100))
    tool: Mapped[str] = mapped_column(String(200))
    call_id: Mapped[str | None] = mapped_column(String(200))
    arguments: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    arguments_digest: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), server_default=ApprovalStatus.PENDING.value)
    reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created_at()
    decided_at: Mapped[datetime | None]
    expires_at: Mapped[datetime]


class IdempotencyKeyRow(Base):
    """An ``Idempotency-Key`` an owner used for an operation, with its request's hash and
    its answer (never a secret); written in the transaction of what the request made."""

    __tablename__ = "idempotency_keys"

    owner: Mapped[str] = mapped_column(String(200), primary_key=True)
    operation: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # json: keeps the key order
    created_at: Mapped[datetime]
