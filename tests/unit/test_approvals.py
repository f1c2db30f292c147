"""Tool policies and approvals: resolution from settings, the approval value, and the
role agent's rule (deny never runs, ask runs only once approved), on hand-written fakes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chatsys.agents.agent import RoleAgent
from chatsys.agents.mcp.config import parse_server, tool_policy
from chatsys.domain.approvals.model import Approval, ApprovalStatus, ToolPolicy, arguments_digest
from chatsys.domain.llm.ports import Completion, LLMEvent, Message, ToolCall, ToolResult, ToolSpec
from chatsys.domain.planning.executor import StepInput
from chatsys.domain.shared.errors import InvalidInput

NOW = datetime(2026, 1, 1, tzinfo=UTC)


# -- policy resolution ---------------------------------------------------------------


def test_a_server_defaults_to_auto() -> None:
    server = parse_server({"name": "time", "command": "mcp-server-time"})
    assert tool_policy(server, "get_current_time") is ToolPolicy.AUTO


def test_per_tool_overrides_win_exact_names_before_patterns() -> None:
    server = parse_server(
        {
            "name": "fs",
            "command": "fs-server",
            "policy": "ask",
            "tool_policies": {"read_*": "auto", "read_secrets": "deny", "*_file": "deny"},
        }
    )
    assert tool_policy(server, "read_secrets") is ToolPolicy.DENY  # exact beats read_*
    assert tool_policy(server, "read_file") is ToolPolicy.AUTO  # first pattern that matches
    assert tool_policy(server, "write_file") is ToolPolicy.DENY
    assert tool_policy(server, "list_dir") is ToolPolicy.ASK  # the server's default


@pytest.mark.parametrize(
    "bad", [{"policy": "sometimes"}, {"tool_policies": {"x": "maybe"}}, {"tool_policies": []}]
)
def test_unknown_policies_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match=r"polic(y|ies)"):
        parse_server({"name": "time", "command": "mcp-server-time", **bad})


# -- the approval value ---------------------------------------------------------------


def approval(**changes: Any) -> Approval:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "task_id": uuid.uuid4(),
        "step": "answer",
        "agent": "assistant",
        "tool": "time__get_current_time",
        "arguments": {"timezone": "UTC"},
        "arguments_digest": arguments_digest({"timezone": "UTC"}),
        "status": ApprovalStatus.PENDING,
        "created_at": NOW,
        "expires_at": NOW + timedelta(minutes=10),
    }
    return Approval(**{**values, **changes})


def test_the_same_arguments_in_any_order_are_the_same_call() -> None:
    assert arguments_digest({"a": 1, "b": [1, 2]}) == arguments_digest({"b": [1, 2], "a": 1})
    assert arguments_digest({"a": 1}) != arguments_digest({"a": 2})


def test_a_decision_is_taken_once() -> None:
    pending = approval()
    denied = pending.decided(ApprovalStatus.DENIED, reason="no", by="ana", at=NOW)
    assert denied.status is ApprovalStatus.DENIED
    assert denied.decided_event()["decided_by"] == "ana"
    assert denied.decided_event()["decided_at"] == "2026-01-01T00:00:00Z"
    with pytest.raises(ValueError, match="already denied"):
        denied.decided(ApprovalStatus.APPROVED, reason=None, by="ana", at=NOW)
    with pytest.raises(ValueError, match="expire before"):
        approval(expires_at=NOW - timedelta(seconds=1))
    with pytest.raises(ValueError, match="decided_at"):
        approval(status=ApprovalStatus.APPROVED)


def test_what_the_model_is_told_when_a_call_is_not_approved() -> None:
    denied = approval().decided(ApprovalStatus.DENIED, reason="not today", by="ana", at=NOW)
    assert "denied by ana: not today" in denied.refusal()
    expired = approval().decided(ApprovalStatus.EXPIRED, reason=None, by=None, at=NOW)
    assert "not approved in time" in expired.refusal()
    assert "did not run" in expired.refusal()


# -- the role agent's rule ---------------------------------------------------------------


class ScriptedLLM:
    """Asks for one tool call, then answers with what the tool turn said."""

    async def _events(self, messages: Sequence[Message]) -> AsyncIterator[LLMEvent]:
        told = [m["content"] for m in messages if m.get("role") == "tool"]
        if told:
            yield Completion(text="done: " + told[0])
        else:
            yield Completion(text="", tool_calls=(ToolCall("c1", "srv__tool", '{"x": 1}'),))

    def stream(
        self,
        *,
        role: str,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] | None = None,
        model: str | None = None,
        json_mode: bool = False,
    ) -> AsyncIterator[LLMEvent]:
        return self._events(messages)


class Tools:
    def __init__(self, policy: ToolPolicy) -> None:
        self.policy = policy
        self.calls: list[bool] = []

    async def tools_for(self, role: str, *, workspace: str | None = None) -> Sequence[ToolSpec]:
        return [ToolSpec("srv__tool", "a tool", {"type": "object"}, self.policy)]

    async def call(
        self,
        role: str,
        name: str,
        arguments: Mapping[str, Any],
        *,
        workspace: str | None = None,
        approved: bool = False,
    ) -> ToolResult:
        self.calls.append(approved)
        return ToolResult("the result")


class Sink:
    def __init__(self, decision: ApprovalStatus) -> None:
        self.decision = decision
        self.asked: list[tuple[str, dict[str, Any]]] = []

    async def delta(self, text: str) -> None:
        return None

    async def tool_started(self, call_id: str, name: str, arguments: Mapping[str, Any]) -> None:
        return None

    async def tool_completed(self, call_id: str, name: str, result: str, is_error: bool) -> None:
        return None

    async def approval(self, call_id: str, name: str, arguments: Mapping[str, Any]) -> Approval:
        self.asked.append((name, dict(arguments)))
        return approval(tool=name).decided(self.decision, reason="because", by="ana", at=NOW)


STEP = StepInput(uuid.uuid4(), "answer", "assistant", "Answer.", "hello")


@pytest.mark.parametrize(
    ("policy", "decision", "asked", "ran", "told"),
    [
        (ToolPolicy.AUTO, ApprovalStatus.DENIED, False, [False], "the result"),
        (ToolPolicy.ASK, ApprovalStatus.APPROVED, True, [True], "the result"),
        (ToolPolicy.ASK, ApprovalStatus.DENIED, True, [], "denied by ana: because"),
        (ToolPolicy.ASK, ApprovalStatus.EXPIRED, True, [], "not approved in time"),
        (ToolPolicy.DENY, ApprovalStatus.APPROVED, False, [], "denied by policy"),
    ],
)
async def test_the_agent_runs_a_tool_only_as_its_policy_allows(
    policy: ToolPolicy, decision: ApprovalStatus, asked: bool, ran: list[bool], told: str
) -> None:
    tools, sink = Tools(policy), Sink(decision)
    output = await RoleAgent(ScriptedLLM(), tools).run(STEP, sink)
    assert bool(sink.asked) is asked
    assert tools.calls == ran
    assert told in output.text
