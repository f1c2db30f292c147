"""Tasks, their state machine, their steps, usage and the event vocabulary.

The vocabularies live here so that every adapter (SQL check constraints, API
schemas) takes them from one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from chatsys.domain.nlu.analyzer import Analysis
from chatsys.domain.planning.planner import Plan
from chatsys.domain.shared.errors import Conflict


class Priority(StrEnum):
    """Under a backlog a higher priority starts first; a lower one still progresses (the
    job queue orders by enqueue time minus a lead per level, so a task waits at most
    that lead behind work of a higher priority queued after it)."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED})


_TASK_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.QUEUED: frozenset({TaskStatus.RUNNING, TaskStatus.CANCELLED, TaskStatus.FAILED}),
    TaskStatus.RUNNING: frozenset(
        {
            TaskStatus.AWAITING_APPROVAL,
            TaskStatus.SUCCEEDED,
            TaskStatus.FAILED,
            TaskStatus.CANCELLED,
            TaskStatus.QUEUED,  # re-queued by the sweeper after a worker died
        }
    ),
    TaskStatus.AWAITING_APPROVAL: frozenset(
        {
            TaskStatus.RUNNING,
            TaskStatus.FAILED,
            TaskStatus.CANCELLED,
            TaskStatus.QUEUED,  # re-queued: its worker died, or shut down, while it waited
        }
    ),
    TaskStatus.SUCCEEDED: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}


def can_transition(current: TaskStatus, new: TaskStatus) -> bool:
    """Whether a task may move from ``current`` to ``new``. Terminal states never change."""
    return new in _TASK_TRANSITIONS[current]


class IllegalTransition(Conflict):
    """A task was asked to move where its state machine does not go."""

    def __init__(self, task_id: UUID, current: TaskStatus, target: TaskStatus) -> None:
        super().__init__(f"task {task_id} cannot go from {current.value} to {target.value}")
        self.current = current
        self.target = target


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"  # unfinished (pending or running) when its task was cancelled

    @property
    def is_finished(self) -> bool:
        return self not in (StepStatus.PENDING, StepStatus.RUNNING)


class EventType(StrEnum):
    TASK_CREATED = "task.created"
    TASK_STARTED = "task.started"
    TASK_ANALYZED = "task.analyzed"
    TASK_PLANNED = "task.planned"
    TASK_REQUEUED = "task.requeued"
    STEP_STARTED = "step.started"
    MESSAGE_DELTA = "message.delta"
    MESSAGE_COMPLETED = "message.completed"
    TOOL_CALL_STARTED = "tool.call.started"
    TOOL_CALL_COMPLETED = "tool.call.completed"
    APPROVAL_REQUESTED = "approval.requested"
    APPROVAL_DECIDED = "approval.decided"
    STEP_RETRYING = "step.retrying"
    STEP_COMPLETED = "step.completed"
    STEP_FAILED = "step.failed"
    STEP_CANCELLED = "step.cancelled"
    PLAN_DEGRADED = "plan.degraded"
    USAGE_UPDATED = "usage.updated"
    TASK_SUCCEEDED = "task.succeeded"
    TASK_FAILED = "task.failed"
    TASK_CANCELLED = "task.cancelled"


TERMINAL_EVENTS = frozenset(
    {EventType.TASK_SUCCEEDED, EventType.TASK_FAILED, EventType.TASK_CANCELLED}
)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            round(self.cost_usd + other.cost_usd, 8),
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": self.cost_usd,
        }


@dataclass(frozen=True, slots=True)
class TaskResult:
    """A succeeded task's answer: the final step's output."""

    text: str
    step: str
    agent: str

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "step": self.step, "agent": self.agent}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskResult:
        return cls(str(data["text"]), str(data["step"]), str(data["agent"]))


class FailureKind(StrEnum):
    LLM = "llm"  # a model call (or the plan) failed for good
    TIMEOUT = "timeout"  # an attempt ran past the task's time limit
    ATTEMPTS = "attempts"  # workers kept stopping: max attempts used up


@dataclass(frozen=True, slots=True)
class TaskError:
    """Why a task failed; ``step`` names the plan step that failed, if one did."""

    message: str
    type: FailureKind
    step: str | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.step is None:
            return {"message": self.message, "type": self.type.value}
        return {"message": self.message, "step": self.step, "type": self.type.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskError:
        step = data.get("step")
        return cls(
            str(data["message"]), FailureKind(data["type"]), None if step is None else str(step)
        )


@dataclass(slots=True)
class StepRecord:
    key: str
    agent: str
    instruction: str
    depends_on: tuple[str, ...]
    status: StepStatus = StepStatus.PENDING
    output: str | None = None
    error: dict[str, Any] | None = None
    attempt: int = 0
    usage: Usage = field(default_factory=Usage)
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(slots=True)
class Task:
    id: UUID
    owner: str
    input: str
    status: TaskStatus
    created_at: datetime
    conversation_id: UUID | None = None
    title: str | None = None
    analysis: Analysis | None = None
    plan: Plan | None = None
    result: TaskResult | None = None
    error: TaskError | None = None
    usage: Usage = field(default_factory=Usage)
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)  # signs its webhook_url calls
    priority: Priority = Priority.NORMAL
    idempotency_key: str | None = None
    request_hash: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    attempt: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested: bool = False
    worker_id: str | None = None
    steps: list[StepRecord] = field(default_factory=list)

    def move_to(self, status: TaskStatus) -> None:
        """Take one step of the state machine; ``IllegalTransition`` for any other move
        (a terminal task never moves again)."""
        if not can_transition(self.status, status):
            raise IllegalTransition(self.id, self.status, status)
        self.status = status

    def requeue(self, *, spend_attempt: bool) -> None:
        """Back to the queue with no runner; a worker shutting down does not spend the
        attempt it was given."""
        self.move_to(TaskStatus.QUEUED)
        self.worker_id = None
        if not spend_attempt:
            self.attempt = max(0, self.attempt - 1)

    def end(self, status: TaskStatus, at: datetime) -> None:
        """Finish the task (succeeded, failed or cancelled) at ``at``; it has no runner."""
        if not status.is_terminal:
            raise ValueError(f"{status.value} is not a terminal status")
        self.move_to(status)
        self.worker_id = None
        self.finished_at = at


@dataclass(frozen=True, slots=True)
class TaskEvent:
    task_id: UUID
    seq: int
    type: str
    data: dict[str, Any]
    created_at: datetime
