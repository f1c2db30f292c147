"""A scriptable model and a tool box, for the agents under test."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chatsys.domain.approvals.model import ToolPolicy
from chatsys.domain.llm.ports import Completion, LLMEvent, Message, TextDelta, ToolResult, ToolSpec
from chatsys.domain.tasks.model import Usage

_STEP = re.compile(r"## Your task \(step '([^']+)'")
USAGE = Usage(10, 5, 0.001)


@dataclass(frozen=True, slots=True)
class LLMCall:
    role: str
    messages: list[Message]
    tools: list[dict[str, Any]] | None
    model: str | None
    json_mode: bool

    @property
    def step(self) -> str | None:
        """The plan step this call works on (from the role agent's prompt)."""
        for message in reversed(self.messages):
            found = _STEP.search(str(message.get("content") or ""))
            if found:
                return found.group(1)
        return None

    @property
    def tool_results(self) -> list[str]:
        return [str(m["content"]) for m in self.messages if m.get("role") == "tool"]


Reply = Callable[[LLMCall], Completion | Awaitable[Completion]]


def echo(call: LLMCall) -> Completion:
    """The default answer: who did which step."""
    return Completion(f"{call.role} did {call.step}", usage=USAGE, model="fake")


class ScriptedLLM:
    """Answers each call with ``reply(call)`` (which may be async, to block, or raise an
    ``LLMError``), streamed word by word. Every call is recorded in ``calls``."""

    def __init__(self, reply: Reply = echo) -> None:
        self.reply = reply
        self.calls: list[LLMCall] = []

    def calls_for(self, step: str) -> int:
        return sum(1 for c in self.calls if c.step == step)

    def stream(
        self,
        *,
        role: str,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] | None = None,
        model: str | None = None,
        json_mode: bool = False,
    ) -> AsyncIterator[LLMEvent]:
        call = LLMCall(
            role,
            [dict(m) for m in messages],
            [dict(t) for t in tools] if tools is not None else None,
            model,
            json_mode,
        )
        return self._events(call)

    async def _events(self, call: LLMCall) -> AsyncIterator[LLMEvent]:
        self.calls.append(call)
        answer = self.reply(call)
        completion = await answer if inspect.isawaitable(answer) else answer
        for word in re.findall(r"\S+\s*", completion.text):
            yield TextDelta(word)
        yield completion


@dataclass(frozen=True, slots=True)
class ToolCallMade:
    role: str
    name: str
    arguments: dict[str, Any]
    approved: bool


class FakeTools:
    """Offers ``specs`` to every role and answers each call with ``result``."""

    def __init__(self, *specs: ToolSpec, result: str = "the tool's result") -> None:
        self.specs = list(specs)
        self.result = result
        self.calls: list[ToolCallMade] = []

    async def tools_for(self, role: str, *, workspace: str | None = None) -> Sequence[ToolSpec]:
        return [s for s in self.specs if s.policy is not ToolPolicy.DENY]

    async def call(
        self,
        role: str,
        name: str,
        arguments: Mapping[str, Any],
        *,
        workspace: str | None = None,
        approved: bool = False,
    ) -> ToolResult:
        self.calls.append(ToolCallMade(role, name, dict(arguments), approved))
        return ToolResult(self.result)


class BlockingLLM(ScriptedLLM):
    """Echoes, but holds every call for step ``held`` until ``release`` is set (a step
    that is still running when the test acts)."""

    def __init__(self, held: str) -> None:
        self.held = held
        self.release = asyncio.Event()
        super().__init__(self._answer)

    async def _answer(self, call: LLMCall) -> Completion:
        if call.step == self.held:
            await self.release.wait()
        return echo(call)
