"""The model and tool ports the agents use, and the values they exchange."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from chatsys.domain.approvals.model import ToolPolicy
from chatsys.domain.tasks.model import Usage

Message = dict[str, Any]  # OpenAI chat format: {"role", "content", ...}


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    model: str | None = None


LLMEvent = TextDelta | Completion


class LLM(Protocol):
    """Streams one model call: text deltas, then exactly one ``Completion``.

    Raises ``chatsys.domain.errors.LLMError`` when the call fails for good.
    """

    def stream(
        self,
        *,
        role: str,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] | None = None,
        model: str | None = None,
        json_mode: bool = False,
    ) -> AsyncIterator[LLMEvent]:
        """``json_mode`` asks for a JSON object (structured output where supported)."""
        ...


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: Mapping[str, Any]
    policy: ToolPolicy = ToolPolicy.AUTO  # ask: each call needs a person's approval

    def as_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }


@dataclass(frozen=True, slots=True)
class ToolResult:
    content: str
    is_error: bool = False


class ToolInvoker(Protocol):
    """The tools an agent may call (decided in code and settings per role, never by the
    model). ``workspace`` names the folder the task's file tools are confined to.

    Each offered tool carries its policy; tools whose policy is ``deny`` are not
    offered, and ``call`` refuses them, and ``ask`` tools unless ``approved``."""

    async def tools_for(self, role: str, *, workspace: str | None = None) -> Sequence[ToolSpec]: ...

    async def call(
        self,
        role: str,
        name: str,
        arguments: Mapping[str, Any],
        *,
        workspace: str | None = None,
        approved: bool = False,
    ) -> ToolResult: ...
