"""The fake database's rows: what the SQL tables hold, domain objects plus the columns the
domain never sees (heartbeat, lease, dispatch stamps, the event counter)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from chatsys.domain.access.model import ApiKey, AuditEntry
from chatsys.domain.approvals.model import Approval
from chatsys.domain.conversations.model import Conversation
from chatsys.domain.conversations.ports import StoredMessage
from chatsys.domain.shared.idempotency import KeyRecord
from chatsys.domain.tasks.model import StepRecord, Task, TaskEvent
from chatsys.domain.webhooks.model import WebhookDelivery, WebhookEndpoint


@dataclass
class TaskRow:
    task: Task  # its ``steps`` and ``cancel_requested`` are not kept here (see below)
    heartbeat_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    last_seq: int = 0


@dataclass
class StepRow:
    position: int
    step: StepRecord


@dataclass
class OutboxRow:
    id: int
    task_id: UUID
    created_at: datetime
    dispatched_at: datetime | None
    attempts: int = 1


@dataclass
class DeliveryRow:
    delivery: WebhookDelivery  # with its attempts
    receiver: str
    round_attempts: int = 0
    lease_until: datetime | None = None


@dataclass
class Tables:
    tasks: dict[UUID, TaskRow] = field(default_factory=dict)
    steps: dict[UUID, dict[str, StepRow]] = field(default_factory=dict)
    events: dict[UUID, list[TaskEvent]] = field(default_factory=dict)
    outbox: dict[int, OutboxRow] = field(default_factory=dict)
    outbox_seq: int = 0
    conversations: dict[UUID, Conversation] = field(default_factory=dict)
    messages: list[StoredMessage] = field(default_factory=list)
    approvals: dict[UUID, Approval] = field(default_factory=dict)
    endpoints: dict[UUID, WebhookEndpoint] = field(default_factory=dict)
    deliveries: dict[UUID, DeliveryRow] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)
    api_keys: dict[UUID, ApiKey] = field(default_factory=dict)
    idempotency: dict[tuple[str, str, str], KeyRecord] = field(default_factory=dict)

    # -- reading rows back as the domain sees them (for assertions) ----------------------

    def task(self, task_id: UUID) -> Task:
        row = self.tasks[task_id]
        task = copy.deepcopy(row.task)
        task.cancel_requested = row.cancel_requested_at is not None
        task.steps = [copy.deepcopy(s.step) for s in self.ordered_steps(task_id)]
        return task

    def ordered_steps(self, task_id: UUID) -> list[StepRow]:
        return sorted(self.steps.get(task_id, {}).values(), key=lambda s: s.position)

    def event_types(self, task_id: UUID) -> list[str]:
        return [e.type for e in self.events.get(task_id, [])]

    def outbox_for(self, task_id: UUID) -> list[OutboxRow]:
        return [r for r in self.outbox.values() if r.task_id == task_id]

    def deliveries_for(self, task_id: UUID) -> list[WebhookDelivery]:
        return [r.delivery for r in self.deliveries.values() if r.delivery.task_id == task_id]
