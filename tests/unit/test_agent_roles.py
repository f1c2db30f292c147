"""Every agent role the planner knows has a profile and an offline line.

How they are looked up, and why a new role without them must fail here:

- ``RoleAgent`` prompts a step with ``PROFILES[parse_role(step.role)]``: a role
  missing from ``PROFILES`` is a ``KeyError`` in the middle of a task, at run
  time, never at start-up.
- The offline model reads the role back from the prompt (``... as the <role>)``)
  and answers with ``_ROLE_LINES.get(role, <the assistant's line>)``: a role
  missing from ``_ROLE_LINES`` fails silently, it speaks with the assistant's line.

The tests are parametrized over ``Role`` itself, so a member added to the enum
adds its own cases: with no profile, ``PROFILES[role]`` raises; with no offline
line, the set comparison fails and so does the check that the offline answer
carries that role's own line (it would carry the assistant's). A profile or a
line left behind for a role that was removed fails the set comparisons too.
(Checked once by adding ``JANITOR = "janitor"`` to ``Role`` locally: the profile,
the offline line and the end-to-end cases failed; then reverted.)
"""

from __future__ import annotations

import uuid

import pytest

from chatsys.agents import offline
from chatsys.agents.agent import build_messages
from chatsys.agents.config import GatewayConfig
from chatsys.agents.gateway import LiteLLMGateway
from chatsys.agents.profiles import PROFILES, tool_allowed
from chatsys.domain.llm.ports import Completion
from chatsys.domain.planning.executor import StepInput
from chatsys.domain.planning.planner import Role


@pytest.fixture(scope="module")
def gateway() -> LiteLLMGateway:
    return LiteLLMGateway(GatewayConfig())


def test_the_profiles_are_exactly_the_roles() -> None:
    assert set(PROFILES) == set(Role)


def test_the_offline_lines_are_exactly_the_roles() -> None:
    assert set(offline._ROLE_LINES) == {role.value for role in Role}


@pytest.mark.parametrize("role", list(Role))
def test_each_role_has_its_own_profile(role: Role) -> None:
    profile = PROFILES[role]
    assert (profile.role, profile.name) == (role, role.value)
    assert profile.system_prompt.strip()
    assert tool_allowed(role, "chatsys__calculate")


@pytest.mark.parametrize("role", list(Role))
async def test_the_offline_model_answers_each_role_with_its_line(
    gateway: LiteLLMGateway, role: Role
) -> None:
    step = StepInput(uuid.uuid4(), "work", role.value, "Do your part.", "Help me plan a garden")
    events = [e async for e in gateway.stream(role=role.value, messages=build_messages(step))]
    final = events[-1]
    assert isinstance(final, Completion)
    assert f"offline model, {role.value}, step 'work'" in final.text
    assert offline._ROLE_LINES[role.value] in final.text
