from __future__ import annotations

import json
from dataclasses import replace

import pytest

from chatsys.domain.nlu import Intent, RuleBasedAnalyzer
from chatsys.domain.planning.planner import (
    ANSWER_KEY,
    ROUTES,
    Plan,
    Planner,
    PlanStep,
    Role,
    topological_order,
)
from chatsys.domain.shared.errors import InvalidInput

analyzer = RuleBasedAnalyzer()


def _levels(keys_and_deps: dict[str, tuple[str, ...]]) -> list[set[str]]:
    levels: list[set[str]] = []
    done: set[str] = set()
    while len(done) < len(keys_and_deps):
        ready = {k for k, d in keys_and_deps.items() if k not in done and set(d) <= done}
        levels.append(ready)
        done |= ready
    return levels


def test_code_generation_runs_review_and_tests_in_parallel_then_answers() -> None:
    analysis = analyzer.analyze(
        "Implement a rate limiter service in Go with Redis, used by all our microservices, "
        "with per-tenant quotas and a REST API for admins"
    )
    plan = Planner().plan(analysis)
    deps = {s.key: s.depends_on for s in plan.steps}
    assert _levels(deps) == [{"design"}, {"implement"}, {"review", "test"}, {ANSWER_KEY}]
    assert plan.step("design").agent is Role.ARCHITECT
    assert plan.final.key == ANSWER_KEY


def test_a_simple_request_skips_the_architect() -> None:
    plan = Planner().plan(analyzer.analyze("write a function that reverses a string"))
    assert plan.steps[0].key == "implement"
    assert plan.step("implement").depends_on == ()


@pytest.mark.parametrize("intent", list(Intent))
def test_every_intent_has_a_valid_route_ending_in_one_answer(intent: Intent) -> None:
    assert ROUTES[intent]
    from chatsys.domain.nlu.analyzer import Analysis
    from chatsys.domain.nlu.entities import Entities

    for complexity in ("low", "high"):
        plan = Planner().plan(Analysis(intent, 0.9, (), Entities(), complexity))
        assert plan.final.key == ANSWER_KEY
        assert topological_order(plan.steps) is not None


def test_general_chat_is_one_assistant_step() -> None:
    plan = Planner().plan(analyzer.analyze("hello!"))
    assert [(s.key, s.agent) for s in plan.steps] == [(ANSWER_KEY, Role.ASSISTANT)]


def test_agents_override_runs_roles_in_order_then_answers() -> None:
    plan = Planner().plan_for_agents(["researcher", "writer"])
    assert [(s.key, s.depends_on) for s in plan.steps] == [
        ("researcher_1", ()),
        ("writer_2", ("researcher_1",)),
        (ANSWER_KEY, ("writer_2",)),
    ]


def test_an_unknown_role_is_named_in_the_error() -> None:
    with pytest.raises(InvalidInput, match="unknown agent role 'wizard'"):
        Planner().plan_for_agents(["developer", "wizard"])


def test_a_custom_plan_with_two_ends_gets_an_answer_step() -> None:
    plan = Planner().custom(
        [
            {"key": "a", "agent": "developer", "instruction": "do a"},
            {"key": "b", "agent": "qa", "instruction": "do b"},
        ]
    )
    assert plan.final.key == ANSWER_KEY
    assert set(plan.final.depends_on) == {"a", "b"}


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (
            [
                {"key": "a", "agent": "developer", "instruction": "x", "depends_on": ["b"]},
                {"key": "b", "agent": "developer", "instruction": "y", "depends_on": ["a"]},
            ],
            "cycle",
        ),
        (
            [{"key": "a", "agent": "developer", "instruction": "x", "depends_on": ["ghost"]}],
            "depends on unknown steps: ghost",
        ),
        (
            [
                {"key": "a", "agent": "developer", "instruction": "x"},
                {"key": "a", "agent": "qa", "instruction": "y"},
            ],
            "duplicate step keys: a",
        ),
        ([{"key": "Bad Key", "agent": "developer", "instruction": "x"}], "lowercase"),
        ([{"key": f"s{i}", "agent": "qa", "instruction": "x"} for i in range(13)], "limit is 12"),
    ],
)
def test_bad_custom_plans_are_refused_with_the_reason(
    steps: list[dict[str, object]], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        Planner().custom(steps)


def test_a_plan_comes_back_from_its_stored_form_unchanged() -> None:
    routed = Planner().plan(analyzer.analyze("write a function that reverses a string"))
    fallback = Plan((PlanStep("fallback", Role.ASSISTANT, "Answer it yourself."),), "degraded")
    degraded = replace(fallback, degraded_from=routed)
    for plan in (routed, Planner().plan_for_agents(["researcher", "writer"]), degraded):
        stored = json.loads(json.dumps(plan.as_dict()))
        assert Plan.from_dict(stored) == plan
        assert json.dumps(Plan.from_dict(stored).as_dict()) == json.dumps(plan.as_dict())
    # a degraded plan is stored as before: the fallback, and the plan it replaced beside it
    assert degraded.as_dict() == {**fallback.as_dict(), "degraded_from": routed.as_dict()}
    assert "degraded_from" not in routed.as_dict()
