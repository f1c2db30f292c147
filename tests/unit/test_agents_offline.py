"""The role agent through the real LiteLLM Router to the built-in offline model."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import pytest

from chatsys.agents.agent import RoleAgent
from chatsys.agents.config import GatewayConfig
from chatsys.agents.gateway import LiteLLMGateway
from chatsys.agents.tools import BuiltinTools, evaluate_arithmetic
from chatsys.domain.approvals.model import Approval
from chatsys.domain.llm.ports import Completion, TextDelta
from chatsys.domain.planning.executor import StepInput
from chatsys.domain.shared.errors import InvalidInput


class Sink:
    def __init__(self) -> None:
        self.text: list[str] = []
        self.tools: list[tuple[str, ...]] = []

    async def delta(self, text: str) -> None:
        self.text.append(text)

    async def tool_started(self, call_id: str, name: str, arguments: Mapping[str, Any]) -> None:
        self.tools.append(("started", name, json.dumps(dict(arguments))))

    async def tool_completed(self, call_id: str, name: str, result: str, is_error: bool) -> None:
        self.tools.append(("completed", name, result))

    async def approval(self, call_id: str, name: str, arguments: Mapping[str, Any]) -> Approval:
        raise AssertionError("no tool here needs an approval")


@pytest.fixture(scope="module")
def gateway() -> LiteLLMGateway:
    return LiteLLMGateway(GatewayConfig())


def step(request: str, role: str = "developer") -> StepInput:
    return StepInput(uuid.uuid4(), "implement", role, "Implement it.", request)


async def test_the_offline_model_streams_and_says_what_it_is(gateway: LiteLLMGateway) -> None:
    events = [
        e
        async for e in gateway.stream(
            role="writer", messages=[{"role": "user", "content": "Say hello"}]
        )
    ]
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    final = events[-1]
    assert isinstance(final, Completion)
    assert len(deltas) > 5  # token by token, not one blob
    assert "".join(deltas) == final.text
    assert "offline model" in final.text
    assert final.usage.completion_tokens > 0
    assert final.usage.prompt_tokens > 0


async def test_the_agent_runs_the_tool_loop_offline(gateway: LiteLLMGateway) -> None:
    sink = Sink()
    output = await RoleAgent(gateway, BuiltinTools()).run(step("what is (12 + 30) * 2?"), sink)
    assert sink.tools[0] == ("started", "chatsys__calculate", '{"expression": "(12 + 30) * 2"}')
    assert sink.tools[1][0:2] == ("completed", "chatsys__calculate")
    assert '"value": 84.0' in sink.tools[1][2]
    assert '"value": 84.0' in output.text  # the result went back to the model
    assert "".join(sink.text) == output.text
    assert output.usage.prompt_tokens > 0


async def test_an_unconfigured_model_override_is_refused(gateway: LiteLLMGateway) -> None:
    with pytest.raises(InvalidInput, match="not configured"):
        async for _ in gateway.stream(role="qa", messages=[], model="openai/gpt-9"):
            pass


def test_unknown_roles_in_role_models_are_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown roles: wizard"):
        LiteLLMGateway(GatewayConfig(role_models={"wizard": "openai/x"}))


@pytest.mark.parametrize(
    ("expression", "value"), [("1 + 2 * 3", 7.0), ("(2 ** 10) / 4", 256.0), ("-7 // 2", -4.0)]
)
def test_arithmetic_tool_computes(expression: str, value: float) -> None:
    assert evaluate_arithmetic(expression) == value


@pytest.mark.parametrize(
    "expression", ["__import__('os').system('id')", "a + 1", "2 ** 100000", "[1, 2]"]
)
def test_arithmetic_tool_refuses_anything_but_arithmetic(expression: str) -> None:
    with pytest.raises(ValueError, match=r"unsupported|too large"):
        evaluate_arithmetic(expression)
