"""Request and response models of tasks (their events: ``api/tasks/events.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from chatsys.api.nlu.schemas import AnalysisOut, RoleName
from chatsys.api.pagination import PageOut
from chatsys.api.responses import Answer, DocumentedAs, Omitted, Shape
from chatsys.api.text import (
    JsonObject,
    Line,
    LineOrNone,
    NonBlankLineOrNone,
    NonBlankText,
    stated,
)
from chatsys.api.webhooks.schemas import WebhookUrlOrNone
from chatsys.domain.nlu import Intent
from chatsys.domain.planning.planner import MAX_STEPS, STEP_KEY_PATTERN, Role
from chatsys.domain.shared.text import TITLE_MAX
from chatsys.domain.tasks.model import (
    FailureKind,
    Priority,
    StepRecord,
    StepStatus,
    Task,
    Usage,
)
from chatsys.domain.tasks.submission import TaskRequest

SEQ_MAX = 2**63 - 1  # an event's seq is a Postgres bigint

TaskStatusName = Literal[
    "queued", "running", "awaiting_approval", "succeeded", "failed", "cancelled"
]


# What the planner refuses, stated in the document (it still answers in its own words).
StepKey = Annotated[Line, stated(pattern=STEP_KEY_PATTERN)]
RequestedRole = Annotated[Line, DocumentedAs(Role, name="AgentRole")]  # the answers' enum


class PlanStepIn(BaseModel):
    """One step of a plan of your own. Beyond the schema: keys are unique, each of
    `depends_on` is another step's key, no cycle, and one last step that nothing
    depends on (an `answer` step is added when several would be)."""

    model_config = ConfigDict(extra="forbid")

    key: StepKey = Field(min_length=1, max_length=50, examples=["implement"])
    agent: RequestedRole = Field(min_length=1, max_length=50, examples=["developer"])
    instruction: NonBlankText = Field(min_length=1, max_length=4000)
    depends_on: list[StepKey] = Field(default_factory=list, max_length=MAX_STEPS)


class TaskOptions(BaseModel):
    """What every way of starting a task accepts besides the text."""

    model_config = ConfigDict(
        extra="forbid",
        # agents and plan exclude each other (the use case says so in its own words)
        json_schema_extra={
            "not": {
                "required": ["agents", "plan"],
                "properties": {"agents": {"type": "array"}, "plan": {"type": "array"}},
            }
        },
    )

    title: NonBlankLineOrNone = Field(default=None, max_length=TITLE_MAX)
    agents: list[RequestedRole] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_STEPS,
        description="run these roles in order instead of the planner's team",
    )
    plan: list[PlanStepIn] | None = Field(
        default=None, min_length=1, max_length=MAX_STEPS, description="a plan of your own"
    )
    model: LineOrNone = Field(
        default=None, min_length=1, max_length=200, description="a configured model"
    )
    webhook_url: WebhookUrlOrNone = Field(
        default=None,
        max_length=2048,
        description="called (signed, Standard Webhooks) when the task ends; the answer to "
        "the submission carries its secret",
    )
    metadata: JsonObject = Field(default_factory=dict, max_length=50)
    priority: Priority | None = Field(
        default=None,
        description="under a backlog higher priorities start first (default: the API "
        "key's `default_priority`, `normal` for most keys)",
    )

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
            priority=self.priority,
        )


class TaskCreate(TaskOptions):
    input: NonBlankText = Field(description="what you want done (at most 32 KiB by default)")
    conversation_id: UUID | None = None


class UsageOut(Shape):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    total_tokens: int = Field(ge=0)
    cost_usd: float = Field(ge=0, description="as priced by the provider's cost map")

    @classmethod
    def of(cls, usage: Usage) -> UsageOut:
        return cls(**usage.as_dict())


PLAN_SHAPES = (*(i.value for i in Intent), "agents", "custom", "degraded")


class PlanStepOut(Shape):
    key: str
    agent: RoleName
    instruction: str
    depends_on: list[str] = Field(description="keys of the steps whose output it is given")


class PlanOut(Shape):
    """The steps of a task (a DAG: steps whose dependencies are done run in parallel; the
    last one is the answer) and where they came from."""

    shape: str = Field(
        description="the intent whose route made it, `agents` (your roles in order), "
        "`custom` (your plan) or `degraded` (one assistant step after a step failed)",
        json_schema_extra={"enum": list(PLAN_SHAPES)},
    )
    steps: list[PlanStepOut]
    degraded_from: Omitted[PlanOut] = Field(description="a degraded plan: the one it replaced")


class ResultOut(Shape):
    """A succeeded task's answer: its final step's output."""

    text: str
    step: str = Field(description="the key of the step that answered")
    agent: RoleName


class TaskErrorOut(Shape):
    """Why a task failed."""

    message: str
    type: Annotated[str, DocumentedAs(FailureKind)] = Field(
        description="`llm`: a model call (or the plan) failed for good; `timeout`: the task "
        "ran past its time limit; `attempts`: workers kept stopping"
    )
    step: Omitted[str] = Field(description="the step that failed, when one did")


class StepErrorOut(Shape):
    """Why a step failed (after its last attempt)."""

    message: str
    attempt: int = Field(ge=1)


class StepOut(Answer):
    key: str
    agent: RoleName
    instruction: str
    depends_on: list[str]
    status: Annotated[str, DocumentedAs(StepStatus)]
    output: str | None
    error: StepErrorOut | None
    attempt: int
    usage: UsageOut
    started_at: datetime | None
    finished_at: datetime | None


def _step(step: StepRecord) -> dict[str, Any]:
    return {
        "key": step.key,
        "agent": step.agent,
        "instruction": step.instruction,
        "depends_on": list(step.depends_on),
        "status": step.status.value,
        "output": step.output,
        "error": step.error,
        "attempt": step.attempt,
        "usage": step.usage.as_dict(),
        "started_at": step.started_at,
        "finished_at": step.finished_at,
    }


def _task(task: Task) -> dict[str, Any]:
    """The task as its answer's fields, each part as the domain writes it (``as_dict``):
    validated once into ``TaskOut`` (one call into pydantic-core for the whole tree,
    cheaper than a model per part)."""
    return {
        "id": task.id,
        "status": task.status.value,
        "input": task.input,
        "title": task.title,
        "conversation_id": task.conversation_id,
        "analysis": None if task.analysis is None else task.analysis.as_dict(),
        "plan": None if task.plan is None else task.plan.as_dict(),
        "steps": [_step(s) for s in task.steps],
        "result": None if task.result is None else task.result.as_dict(),
        "error": None if task.error is None else task.error.as_dict(),
        "usage": task.usage.as_dict(),
        "attempt": task.attempt,
        "cancel_requested": task.cancel_requested,
        "webhook_url": task.webhook_url,
        "priority": task.priority.value,
        "metadata": task.metadata,
        "created_at": task.created_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
    }


class TaskOut(Answer):
    id: UUID
    status: TaskStatusName
    input: str
    title: str | None
    conversation_id: UUID | None
    analysis: AnalysisOut | None = Field(description="null until the worker has analysed it")
    plan: PlanOut | None = Field(description="null until the worker has planned it")
    steps: list[StepOut]
    result: ResultOut | None = Field(description="a succeeded task's answer")
    error: TaskErrorOut | None = Field(description="why a failed task failed")
    usage: UsageOut
    attempt: int
    cancel_requested: bool
    webhook_url: str | None
    priority: Priority
    metadata: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, task: Task) -> TaskOut:
        return cls.model_validate(_task(task))


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
        return cls.model_validate({**_task(task), "webhook_secret": webhook_secret})


class TaskSummary(Answer):
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
