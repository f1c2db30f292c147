"""Request and response models shared by the task and conversation routers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from chatsys.domain.conversations.ports import StoredMessage
from chatsys.domain.mcp.ports import McpServerInfo, McpToolInfo
from chatsys.domain.planning.planner import MAX_STEPS
from chatsys.domain.shared.text import TITLE_MAX
from chatsys.domain.tasks.model import StepRecord, Task, TaskEvent, Usage
from chatsys.domain.tasks.submission import TaskRequest

TaskStatusName = Literal[
    "queued", "running", "awaiting_approval", "succeeded", "failed", "cancelled"
]


class PlanStepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=50, examples=["implement"])
    agent: str = Field(min_length=1, max_length=50, examples=["developer"])
    instruction: str = Field(min_length=1, max_length=4000)
    depends_on: list[str] = Field(default_factory=list, max_length=MAX_STEPS)


class TaskOptions(BaseModel):
    """What every way of starting a task accepts besides the text."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=TITLE_MAX)
    agents: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_STEPS,
        description="run these roles in order instead of the planner's team",
    )
    plan: list[PlanStepIn] | None = Field(
        default=None, min_length=1, max_length=MAX_STEPS, description="a plan of your own"
    )
    model: str | None = Field(default=None, max_length=200, description="a configured model")
    webhook_url: str | None = Field(
        default=None,
        max_length=2048,
        description="called (signed, Standard Webhooks) when the task ends; the answer to "
        "the submission carries its secret",
    )
    metadata: dict[str, Any] = Field(default_factory=dict, max_length=50)

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
    input: str = Field(description="what you want done (at most 32 KiB by default)")
    conversation_id: UUID | None = None


class MessageCreate(TaskOptions):
    content: str = Field(description="the user's message; it starts a task in the conversation")


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
    def created(cls, task: Task) -> TaskCreatedOut:
        return cls(**TaskOut.of(task).__dict__, webhook_secret=task.webhook_secret)


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


class TaskPageOut(BaseModel):
    items: list[TaskSummary]
    next_cursor: str | None


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


class MessageOut(BaseModel):
    id: UUID
    role: str
    content: str
    agent: str | None
    task_id: UUID | None
    created_at: datetime

    @classmethod
    def of(cls, message: StoredMessage) -> MessageOut:
        return cls(
            id=message.id,
            role=message.role.value,
            content=message.content,
            agent=message.agent,
            task_id=message.task_id,
            created_at=message.created_at,
        )


class MessagePageOut(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None


class McpServerCreate(BaseModel):
    """An MCP server to register: ``command`` (stdio) or ``url`` (streamable HTTP)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=32, examples=["time"])
    transport: Literal["stdio", "streamable-http"] | None = None
    command: str | None = Field(default=None, max_length=4096, examples=["mcp-server-time"])
    args: list[str] = Field(default_factory=list, max_length=256)
    env: dict[str, str] = Field(default_factory=dict, max_length=100)
    cwd: str | None = Field(default=None, max_length=4096)
    url: str | None = Field(default=None, max_length=2048)
    headers: dict[str, str] = Field(default_factory=dict, max_length=100)
    roles: list[str] = Field(default_factory=lambda: ["*"], max_length=20)
    tools: list[str] = Field(default_factory=lambda: ["*"], max_length=100)
    timeout: float | None = Field(default=None, gt=0, le=3600)
    max_result_chars: int | None = Field(default=None, ge=100, le=1_000_000)
    lazy: bool = True


class McpServerOut(BaseModel):
    name: str
    transport: str
    source: Literal["settings", "api", "builtin"] | str
    state: Literal["stopped", "starting", "ready", "failed", "stopping"] | str
    tools: int
    quarantined: int
    last_error: str | None
    restarts: int
    pid: int | None
    definition: dict[str, Any] = Field(description="env and header values are hidden")

    @classmethod
    def of(cls, info: McpServerInfo) -> McpServerOut:
        return cls(
            name=info.name,
            transport=info.transport,
            source=info.source,
            state=info.state,
            tools=info.tools,
            quarantined=info.quarantined,
            last_error=info.last_error,
            restarts=info.restarts,
            pid=info.pid,
            definition=dict(info.definition),
        )


class McpServerListOut(BaseModel):
    items: list[McpServerOut]


class McpToolOut(BaseModel):
    server: str
    name: str
    qualified_name: str = Field(description="the name agents see: server__tool")
    description: str
    input_schema: dict[str, Any]
    status: Literal["active", "quarantined"] | str
    digest: str = Field(description="sha256 of the description and input schema")
    policy: Literal["auto", "ask", "deny"] | str = Field(
        default="auto", description="auto: runs; ask: each call needs an approval; deny: never"
    )

    @classmethod
    def of(cls, info: McpToolInfo) -> McpToolOut:
        return cls(
            server=info.server,
            name=info.name,
            qualified_name=info.qualified_name,
            description=info.description,
            input_schema=dict(info.input_schema),
            status=info.status,
            digest=info.digest,
            policy=info.policy,
        )


class McpToolListOut(BaseModel):
    items: list[McpToolOut]


class McpToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arguments: dict[str, Any] = Field(default_factory=dict)
    workspace: str | None = Field(
        default=None,
        max_length=64,
        description="for the workspace tools: the workspace (a conversation or task id)",
    )


class McpToolResultOut(BaseModel):
    content: str
    is_error: bool
