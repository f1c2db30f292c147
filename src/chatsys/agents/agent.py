"""A role agent: prompts the model for one step, streams its tokens, runs its tool calls."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from chatsys.agents.profiles import PROFILES
from chatsys.domain.approvals.model import ApprovalStatus, ToolPolicy, denied_by_policy
from chatsys.domain.llm.ports import LLM, Completion, Message, TextDelta, ToolCall, ToolInvoker
from chatsys.domain.planning.executor import StepInput, StepOutput, StepSink
from chatsys.domain.planning.planner import parse_role
from chatsys.domain.shared.errors import LLMError
from chatsys.domain.tasks.model import Usage

MAX_TOOL_ROUNDS = 5
DEPENDENCY_CHARS = 12_000  # per earlier step, so a long chain cannot blow the context window


def build_messages(step: StepInput) -> list[Message]:
    profile = PROFILES[parse_role(step.role)]
    messages: list[Message] = [{"role": "system", "content": profile.system_prompt}]
    for turn in step.history:
        messages.append({"role": turn.role, "content": turn.content})
    parts = [f"## The user's request\n{step.request}"]
    if step.analysis is not None:
        intent = step.analysis.primary.value
        tech = ", ".join(step.analysis.technologies) or "none detected"
        parts.append(f"## Analysis\nintent: {intent}; technologies: {tech}")
    for key, output in step.dependencies.items():
        parts.append(f"## Output of step '{key}'\n{output[:DEPENDENCY_CHARS]}")
    parts.append(f"## Your task (step '{step.key}', as the {step.role})\n{step.instruction}")
    messages.append({"role": "user", "content": "\n\n".join(parts)})
    return messages


def _arguments(call: ToolCall) -> Mapping[str, Any] | str:
    try:
        parsed = json.loads(call.arguments or "{}")
    except json.JSONDecodeError as exc:
        return f"arguments are not valid JSON: {exc}"
    return parsed if isinstance(parsed, dict) else "arguments must be a JSON object"


class RoleAgent:
    """The ``AgentRunner`` of the executor: one step, possibly several model rounds."""

    def __init__(self, llm: LLM, tools: ToolInvoker, *, max_tool_rounds: int = MAX_TOOL_ROUNDS):
        self._llm = llm
        self._tools = tools
        self._max_rounds = max_tool_rounds

    async def run(self, step: StepInput, sink: StepSink) -> StepOutput:
        messages = build_messages(step)
        specs = await self._tools.tools_for(step.role, workspace=step.workspace)
        tools = [s.as_openai() for s in specs] or None
        policies = {s.name: s.policy for s in specs}
        usage = Usage()
        model: str | None = None
        for _ in range(self._max_rounds + 1):
            completion = await self._one_round(step, messages, tools, sink)
            usage = usage + completion.usage
            model = completion.model or model
            if not completion.tool_calls or tools is None:
                return StepOutput(completion.text, usage, model)
            messages.append(_assistant_turn(completion))
            for call in completion.tool_calls:
                policy = policies.get(call.name, ToolPolicy.AUTO)
                messages.append(await self._run_tool(step, call, policy, sink))
        raise LLMError(
            f"the {step.role} agent kept calling tools after {self._max_rounds} rounds",
            retryable=False,
        )

    async def _one_round(
        self,
        step: StepInput,
        messages: Sequence[Message],
        tools: list[dict[str, Any]] | None,
        sink: StepSink,
    ) -> Completion:
        stream = self._llm.stream(role=step.role, messages=messages, tools=tools, model=step.model)
        async for event in stream:
            if isinstance(event, TextDelta):
                if event.text:
                    await sink.delta(event.text)
            else:
                return event
        raise LLMError("the model stream ended without a completion", retryable=True)

    async def _run_tool(
        self, step: StepInput, call: ToolCall, policy: ToolPolicy, sink: StepSink
    ) -> Message:
        """Policy (code and settings, never the model): ``deny`` never runs; ``ask`` runs
        once a person approves, else the model is told it was denied and goes on."""
        arguments = _arguments(call)
        shown = arguments if isinstance(arguments, Mapping) else {"raw": call.arguments}
        await sink.tool_started(call.id, call.name, shown)
        if isinstance(arguments, str):
            content, is_error = arguments, True
        elif policy is ToolPolicy.DENY:
            content, is_error = denied_by_policy(call.name), True
        else:
            approval = None
            if policy is ToolPolicy.ASK:
                approval = await sink.approval(call.id, call.name, arguments)
            if approval is not None and approval.status is not ApprovalStatus.APPROVED:
                content, is_error = approval.refusal(), True
            else:
                result = await self._tools.call(
                    step.role,
                    call.name,
                    arguments,
                    workspace=step.workspace,
                    approved=approval is not None,
                )
                content, is_error = result.content, result.is_error
        await sink.tool_completed(call.id, call.name, content, is_error)
        return {"role": "tool", "tool_call_id": call.id, "content": content}


def _assistant_turn(completion: Completion) -> Message:
    return {
        "role": "assistant",
        "content": completion.text or None,
        "tool_calls": [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in completion.tool_calls
        ],
    }
