"""Request and response models of tasks and their events."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from chatsys.api.pagination import PageOut
from chatsys.api.text import JsonObject, Line, LineOrNone, Text
from chatsys.domain.planning.planner import MAX_STEPS
from chatsys.domain.shared.text import TITLE_MAX
from chatsys.domain.tasks.model import StepRecord, Task, TaskEvent, Usage
from chatsys.domain.tasks.submission import TaskRequest

SEQ_MAX = 2**63 - 1  # an event's seq is a Postgres bigint

TaskStatusName = Literal[
    "queued", "running", "awaiting_approval", "succeeded", "failed", "cancelled"
]


class PlanStepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: Line = Field(min_length=1, max_length=50, examples=["implement"])
    agent: Line = Field(min_length=1, max_length=50, examples=["developer"])
    instruction: Text = Field(min_length=1, max_length=4000)
    depends_on: list[Line] = Field(default_factory=list, max_length=MAX_STEPS)


class TaskOptions(BaseModel):
    """What every way of starting a task accepts besides the text."""

    model_config = ConfigDict(extra="forbid")

    title: LineOrNone = Field(default=None, max_length=TITLE_MAX)
    agents: list[Line] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_STEPS,
        description="run these roles in order instead of the planner's team",
    )
    plan: list[PlanStepIn] | None = Field(
        default=None, min_length=1, max_length=MAX_STEPS, description="a plan of your own"
    )
    model: LineOrNone = Field(default=None, max_length=200, description="a configured model")
    webhook_url: LineOrNone = Field(
        default=None,
        max_length=2048,
        description="called (signed, Standard Webhooks) when the task ends; the answer to "
        "the submission carries its secret",
    )
    metadata: JsonObject = Field(default_factory=dict, max_length=50)

    def to_request(self, text: str, conversation_id: UUID | None) -> TaskRequest:
        return TaskRequest(
            input=text,
            conversation_id=conversation_id,
            title=self.title,
            agents=self.agents,
            plan=[s.model_dump() for s in self.plan] if self.plan is not None else None,
            model=self.model,
            webhook_url=self.webhook_url,
            metadata=self.metadata,
        )


class TaskCreate(TaskOptions):
    input: Text = Field(description="what you want done (at most 32 KiB by default)")
    conversation_id: UUID | None = None


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float

    @classmethod
    def of(cls, usage: Usage) -> UsageOut:
        return cls(**usage.as_dict())


class StepOut(BaseModel):
    key: str
    agent: str
    instruction: str
    depends_on: list[str]
    status: str
    output: str | None
    error: dict[str, Any] | None
    attempt: int
    usage: UsageOut
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, step: StepRecord) -> StepOut:
        return cls(
            key=step.key,
            agent=step.agent,
            instruction=step.instruction,
            depends_on=list(step.depends_on),
            status=step.status.value,
            output=step.output,
            error=step.error,
            attempt=step.attempt,
            usage=UsageOut.of(step.usage),
            started_at=step.started_at,
            finished_at=step.finished_at,
        )


class TaskOut(BaseModel):
    id: UUID
    status: TaskStatusName
    input: str
    title: str | None
    conversation_id: UUID | None
    analysis: dict[str, Any] | None
    plan: dict[str, Any] | None
    steps: list[StepOut]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    usage: UsageOut
    attempt: int
    cancel_requested: bool
    webhook_url: str | None
    metadata: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, task: Task) -> TaskOut:
        return cls(
            id=task.id,
            status=task.status.value,
            input=task.input,
            title=task.title,
            conversation_id=task.conversation_id,
            analysis=None if task.analysis is None else task.analysis.as_dict(),
            plan=None if task.plan is None else task.plan.as_dict(),
            steps=[StepOut.of(s) for s in task.steps],
            result=None if task.result is None else task.result.as_dict(),
            error=None if task.error is None else task.error.as_dict(),
            usage=UsageOut.of(task.usage),
            attempt=task.attempt,
            cancel_requested=task.cancel_requested,
            webhook_url=task.webhook_url,
            metadata=task.metadata,
            created_at=task.created_at,
            started_at=task.started_at,
            finished_at=task.finished_at,
        )


def task_json(task: Task) -> dict[str, Any]:
    """A task exactly as ``GET /v1/tasks/{id}`` shows it, as JSON data (webhook payloads)."""
    return TaskOut.of(task).model_dump(mode="json")


class TaskCreatedOut(TaskOut):
    webhook_secret: str | None = Field(
        default=None,
        description="with a webhook_url: the whsec_ secret its calls are signed with "
        "(shown only here)",
    )

    @classmethod
    def created(cls, task: Task, *, webhook_secret: str | None) -> TaskCreatedOut:
        return cls(**TaskOut.of(task).__dict__, webhook_secret=webhook_secret)


class TaskSummary(BaseModel):
    id: UUID
    status: TaskStatusName
    title: str | None
    input: str = Field(description="the first 200 characters")
    conversation_id: UUID | None
    usage: UsageOut
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, task: Task) -> TaskSummary:
        return cls(
            id=task.id,
            status=task.status.value,
            title=task.title,
            input=task.input[:200],
            conversation_id=task.conversation_id,
            usage=UsageOut.of(task.usage),
            created_at=task.created_at,
            finished_at=task.finished_at,
        )


class TaskPageOut(PageOut[TaskSummary]):
    """A page of tasks, newest first."""


class EventOut(BaseModel):
    seq: int
    type: str
    data: dict[str, Any]
    ts: datetime

    @classmethod
    def of(cls, event: TaskEvent) -> EventOut:
        return cls(seq=event.seq, type=event.type, data=event.data, ts=event.created_at)


class EventPageOut(BaseModel):
    items: list[EventOut]
    last_seq: int = Field(description="pass as `after` to continue")
    done: bool = Field(description="true once the page ends with the task's terminal event")
