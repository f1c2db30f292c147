"""Request and response models of MCP servers and tools."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chatsys.api.text import JsonObject, Line, LineMap, LineOrNone, Text, TextMap
from chatsys.domain.mcp.ports import McpServerInfo, McpToolInfo


class McpServerCreate(BaseModel):
    """An MCP server to register: ``command`` (stdio) or ``url`` (streamable HTTP)."""

    model_config = ConfigDict(extra="forbid")

    name: Line = Field(min_length=1, max_length=32, examples=["time"])
    transport: Literal["stdio", "streamable-http"] | None = None
    command: LineOrNone = Field(default=None, max_length=4096, examples=["mcp-server-time"])
    args: list[Text] = Field(default_factory=list, max_length=256)
    env: TextMap = Field(default_factory=dict, max_length=100)
    cwd: LineOrNone = Field(default=None, max_length=4096)
    url: LineOrNone = Field(default=None, max_length=2048)
    headers: LineMap = Field(default_factory=dict, max_length=100)
    roles: list[Line] = Field(default_factory=lambda: ["*"], max_length=20)
    tools: list[Line] = Field(default_factory=lambda: ["*"], max_length=100)
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

    arguments: JsonObject = Field(default_factory=dict)
    workspace: LineOrNone = Field(
        default=None,
        max_length=64,
        description="for the workspace tools: the workspace (a conversation or task id)",
    )


class McpToolResultOut(BaseModel):
    content: str
    is_error: bool
