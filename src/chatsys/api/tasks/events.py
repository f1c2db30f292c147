"""The event frame ``{task_id, seq, type, data, ts}``: one schema per event type.

``TaskEvent`` is a union discriminated on ``type``, with a typed ``data`` for each type
of ``EventType``; the JSON page of ``GET /v1/tasks/{id}/events``, its SSE stream, the
WebSocket ``/v1/tasks/{id}/stream`` and the ``event`` frames of ``/v1/ws`` all carry it.

The domain writes each ``data`` (where it happens: ``domain/tasks/running.py``,
``domain/planning/journal.py``, ``domain/tasks/ending.py``, ``domain/approvals``) and
the streams send the stored JSON as it is, encoded once per event (the hot path: no
model on the way out). These models are its one description: the document's schemas
come from them, and the tests validate every event of real runs against the document
(an event type without a model fails ``tests/unit/test_document_shapes.py``; a ``data``
that gains an undocumented key, ``tests/integration/test_typed_document.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import ConfigDict, Field, RootModel

from chatsys.api.nlu.schemas import AnalysisOut, RoleName
from chatsys.api.responses import Answer, DocumentedAs, Shape
from chatsys.api.tasks.examples import event_example
from chatsys.api.tasks.schemas import PlanOut, ResultOut, TaskErrorOut, UsageOut
from chatsys.domain.approvals.model import ApprovalStatus
from chatsys.domain.tasks.model import EventType, StepStatus, TaskStatus
from chatsys.domain.tasks.model import TaskEvent as StoredEvent

Step = Annotated[str, Field(description="the plan step's key")]
Attempt = Annotated[int, Field(ge=1, description="the step's attempt (1 the first time)")]

# -- data, one model per event type ----------------------------------------------------


class TaskCreatedData(Shape):
    status: Literal[TaskStatus.QUEUED]
    conversation_id: UUID | None


class TaskStartedData(Shape):
    attempt: int = Field(ge=1, description="the task's attempt: > 1 when a worker resumed it")
    worker: str = Field(description="the worker that claimed it")


class TaskAnalyzedData(Shape):
    analysis: AnalysisOut


class TaskPlannedData(Shape):
    plan: PlanOut


class TaskRequeuedData(Shape):
    reason: str = Field(examples=["worker shutting down", "worker died", "worker heartbeat lapsed"])


class StepStartedData(Shape):
    step: Step
    agent: RoleName
    attempt: Attempt


class MessageDeltaData(Shape):
    step: Step
    agent: RoleName
    attempt: Attempt
    text: str = Field(description="the next tokens; a step's deltas add up to its output")


class MessageCompletedData(Shape):
    step: Step
    agent: RoleName
    text: str = Field(description="the step's whole output")
    model: str | None = Field(description="the model that answered, as the provider names it")


class ToolCallStartedData(Shape):
    step: Step
    call_id: str
    tool: str = Field(description="as the agent calls it: `server__tool`")
    arguments: dict[str, Any]


class ToolCallCompletedData(Shape):
    step: Step
    call_id: str
    tool: str
    result: str = Field(description="the tool's answer, cut to 2,000 characters")
    truncated: bool = Field(description="whether `result` was cut")
    is_error: bool = Field(description="the tool failed, refused, or was not approved")


class ApprovalRequestedData(Shape):
    approval_id: UUID
    step: Step
    agent: RoleName
    tool: str
    call_id: str | None
    arguments: dict[str, Any]
    expires_at: datetime


class ApprovalDecidedData(Shape):
    approval_id: UUID
    step: Step
    agent: RoleName
    tool: str
    call_id: str | None
    status: Literal[ApprovalStatus.APPROVED, ApprovalStatus.DENIED, ApprovalStatus.EXPIRED]
    reason: str | None
    decided_by: str | None = Field(description="null when it expired")
    decided_at: datetime


class StepRetryingData(Shape):
    step: Step
    attempt: Attempt = Field(description="the attempt that failed")
    error: str
    retry_in_s: float = Field(ge=0)


class StepCompletedData(Shape):
    step: Step
    agent: RoleName
    usage: UsageOut


class StepFailedData(Shape):
    step: Step
    agent: RoleName
    attempt: Attempt = Field(description="its last attempt")
    error: str


class StepCancelledData(Shape):
    step: Step
    agent: RoleName
    attempt: int = Field(ge=0, description="0: it had not started")
    was: Literal[StepStatus.PENDING, StepStatus.RUNNING]


class PlanDegradedData(Shape):
    failed_step: str
    reason: str
    plan: PlanOut = Field(description="the plan that replaces it: one assistant step")


class UsageUpdatedData(Shape):
    usage: UsageOut = Field(description="the task's totals so far")


class TaskSucceededData(Shape):
    result: ResultOut
    usage: UsageOut


class TaskFailedData(Shape):
    error: TaskErrorOut
    usage: UsageOut


class TaskCancelledData(Shape):
    reason: str = Field(examples=["cancel requested", "cancelled before it started"])


# -- frames, one per event type ----------------------------------------------------------


def _example(schema: dict[str, Any]) -> None:
    kind = schema["properties"]["type"].get("const")
    if kind is not None:  # each event type's frame (not the base)
        schema["examples"] = [event_example(kind)]


class _Frame(Shape):
    model_config = ConfigDict(json_schema_extra=_example)

    task_id: UUID
    seq: int = Field(ge=1, description="gapless per task, from 1")
    ts: datetime = Field(description="when it was recorded")


class TaskCreatedEvent(_Frame):
    type: Literal[EventType.TASK_CREATED]
    data: TaskCreatedData


class TaskStartedEvent(_Frame):
    type: Literal[EventType.TASK_STARTED]
    data: TaskStartedData


class TaskAnalyzedEvent(_Frame):
    type: Literal[EventType.TASK_ANALYZED]
    data: TaskAnalyzedData


class TaskPlannedEvent(_Frame):
    type: Literal[EventType.TASK_PLANNED]
    data: TaskPlannedData


class TaskRequeuedEvent(_Frame):
    type: Literal[EventType.TASK_REQUEUED]
    data: TaskRequeuedData


class StepStartedEvent(_Frame):
    type: Literal[EventType.STEP_STARTED]
    data: StepStartedData


class MessageDeltaEvent(_Frame):
    type: Literal[EventType.MESSAGE_DELTA]
    data: MessageDeltaData


class MessageCompletedEvent(_Frame):
    type: Literal[EventType.MESSAGE_COMPLETED]
    data: MessageCompletedData


class ToolCallStartedEvent(_Frame):
    type: Literal[EventType.TOOL_CALL_STARTED]
    data: ToolCallStartedData


class ToolCallCompletedEvent(_Frame):
    type: Literal[EventType.TOOL_CALL_COMPLETED]
    data: ToolCallCompletedData


class ApprovalRequestedEvent(_Frame):
    type: Literal[EventType.APPROVAL_REQUESTED]
    data: ApprovalRequestedData


class ApprovalDecidedEvent(_Frame):
    type: Literal[EventType.APPROVAL_DECIDED]
    data: ApprovalDecidedData


class StepRetryingEvent(_Frame):
    type: Literal[EventType.STEP_RETRYING]
    data: StepRetryingData


class StepCompletedEvent(_Frame):
    type: Literal[EventType.STEP_COMPLETED]
    data: StepCompletedData


class StepFailedEvent(_Frame):
    type: Literal[EventType.STEP_FAILED]
    data: StepFailedData


class StepCancelledEvent(_Frame):
    type: Literal[EventType.STEP_CANCELLED]
    data: StepCancelledData


class PlanDegradedEvent(_Frame):
    type: Literal[EventType.PLAN_DEGRADED]
    data: PlanDegradedData


class UsageUpdatedEvent(_Frame):
    type: Literal[EventType.USAGE_UPDATED]
    data: UsageUpdatedData


class TaskSucceededEvent(_Frame):
    type: Literal[EventType.TASK_SUCCEEDED]
    data: TaskSucceededData


class TaskFailedEvent(_Frame):
    type: Literal[EventType.TASK_FAILED]
    data: TaskFailedData


class TaskCancelledEvent(_Frame):
    type: Literal[EventType.TASK_CANCELLED]
    data: TaskCancelledData


AnyTaskEvent = Annotated[
    TaskCreatedEvent
    | TaskStartedEvent
    | TaskAnalyzedEvent
    | TaskPlannedEvent
    | TaskRequeuedEvent
    | StepStartedEvent
    | MessageDeltaEvent
    | MessageCompletedEvent
    | ToolCallStartedEvent
    | ToolCallCompletedEvent
    | ApprovalRequestedEvent
    | ApprovalDecidedEvent
    | StepRetryingEvent
    | StepCompletedEvent
    | StepFailedEvent
    | StepCancelledEvent
    | PlanDegradedEvent
    | UsageUpdatedEvent
    | TaskSucceededEvent
    | TaskFailedEvent
    | TaskCancelledEvent,
    Field(discriminator="type"),
]


class TaskEvent(RootModel[AnyTaskEvent]):
    """One event of a task's log, as every stream and page sends it:
    ``{task_id, seq, type, data, ts}``; ``type`` says which ``data`` it carries."""


# -- the JSON page -----------------------------------------------------------------------


class EventOut(Answer):
    """An event as stored, sent as it is (the document shows ``TaskEvent``)."""

    task_id: UUID
    seq: int
    type: str
    data: dict[str, Any]
    ts: datetime

    @classmethod
    def of(cls, event: StoredEvent) -> EventOut:
        return cls(
            task_id=event.task_id, seq=event.seq, type=event.type, data=event.data,
            ts=event.created_at,
        )  # fmt: skip


class EventPageOut(Answer):
    items: Annotated[list[EventOut], DocumentedAs(list[TaskEvent])]
    last_seq: int = Field(description="pass as `after` to continue")
    done: bool = Field(description="true once the page ends with the task's terminal event")
