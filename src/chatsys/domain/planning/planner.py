"""From an analysis to a plan: a small DAG of steps over role agents.

Rules:
- the route for an intent is data (``ROUTES``): which roles work, in which
  order, and what each is asked to do; steps whose dependencies are all done
  run in parallel;
- a step marked ``skip_when_simple`` is left out for low-complexity requests
  (a one-line function needs no architect);
- every plan ends in exactly one step, the answer: when the route (or a
  client's plan) ends in several, an ``answer`` step by the assistant is added
  to aggregate them;
- a client may override the route with a list of roles (run in that order,
  each seeing the previous one's output) or with a whole plan, which is
  validated: unique keys, known roles, existing dependencies, no cycle.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from chatsys.domain.nlu import Analysis, Intent
from chatsys.domain.shared.errors import InvalidInput

MAX_STEPS = 12
FALLBACK_KEY = "fallback"
_FALLBACK = "The team could not finish this request. Answer it directly and completely on your own."
STEP_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,49}$"  # a plan step's key
_KEY = re.compile(STEP_KEY_PATTERN)
ANSWER_KEY = "answer"


class Role(StrEnum):
    ARCHITECT = "architect"
    DEVELOPER = "developer"
    REVIEWER = "reviewer"
    QA = "qa"
    RESEARCHER = "researcher"
    WRITER = "writer"
    DEVOPS = "devops"
    ANALYST = "analyst"
    ASSISTANT = "assistant"
    OPERATOR = "operator"


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise InvalidInput(f"unknown agent role '{value}'; known roles: {known}") from None


@dataclass(frozen=True, slots=True)
class PlanStep:
    key: str
    agent: Role
    instruction: str
    depends_on: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "agent": self.agent.value,
            "instruction": self.instruction,
            "depends_on": list(self.depends_on),
        }


@dataclass(frozen=True, slots=True)
class Plan:
    """Steps and the shape they came from (an intent, ``agents``, ``custom`` or
    ``degraded``); a degraded plan remembers the plan it replaced."""

    steps: tuple[PlanStep, ...]
    shape: str
    degraded_from: Plan | None = None

    def __post_init__(self) -> None:
        _validate(self.steps)

    @property
    def final(self) -> PlanStep:
        return self.steps[-1]

    def step(self, key: str) -> PlanStep:
        return next(s for s in self.steps if s.key == key)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"shape": self.shape, "steps": [s.as_dict() for s in self.steps]}
        if self.degraded_from is not None:
            data["degraded_from"] = self.degraded_from.as_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        earlier = data.get("degraded_from")
        return cls(
            tuple(
                PlanStep(s["key"], parse_role(s["agent"]), s["instruction"], tuple(s["depends_on"]))
                for s in data["steps"]
            ),
            str(data.get("shape", "custom")),
            cls.from_dict(earlier) if earlier is not None else None,
        )


def _validate(steps: Sequence[PlanStep]) -> None:
    if not steps:
        raise InvalidInput("plan: a plan needs at least one step")
    if len(steps) > MAX_STEPS:
        raise InvalidInput(f"plan: {len(steps)} steps; the limit is {MAX_STEPS}")
    keys = [s.key for s in steps]
    for key in keys:
        if not _KEY.match(key):
            raise InvalidInput(
                f"plan: step key '{key}' must be lowercase letters, digits and '_', "
                "starting with a letter (at most 50 characters)"
            )
    if len(set(keys)) != len(keys):
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        raise InvalidInput(f"plan: duplicate step keys: {', '.join(dupes)}")
    for step in steps:
        if not step.instruction.strip():
            raise InvalidInput(f"plan: step '{step.key}' has an empty instruction")
        missing = [d for d in step.depends_on if d not in keys]
        if missing:
            raise InvalidInput(
                f"plan: step '{step.key}' depends on unknown steps: {', '.join(missing)}"
            )
    order = topological_order(steps)
    if order is None:
        raise InvalidInput("plan: the dependencies form a cycle")
    sinks = [s.key for s in steps if not any(s.key in o.depends_on for o in steps)]
    if sinks != [steps[-1].key]:
        raise InvalidInput(
            f"plan: the last step must be the only one nothing depends on (found {sinks})"
        )


def topological_order(steps: Sequence[PlanStep]) -> list[str] | None:
    """Keys in an order that respects dependencies, or None when there is a cycle."""
    pending = {s.key: set(s.depends_on) for s in steps}
    order: list[str] = []
    while pending:
        ready = [k for k, deps in pending.items() if not deps]
        if not ready:
            return None
        for key in ready:
            order.append(key)
            del pending[key]
        for deps in pending.values():
            deps.difference_update(ready)
    return order


@dataclass(frozen=True, slots=True)
class StepTemplate:
    key: str
    agent: Role
    instruction: str
    depends_on: tuple[str, ...] = ()
    skip_when_simple: bool = False


def _t(
    key: str, agent: Role, instruction: str, *deps: str, simple_skip: bool = False
) -> StepTemplate:
    return StepTemplate(key, agent, instruction, deps, simple_skip)


_AGGREGATE = (
    "Write the final answer for the user from the team's work below: keep what is correct, "
    "resolve disagreements, and present code and conclusions clearly."
)

ROUTES: dict[Intent, tuple[StepTemplate, ...]] = {
    Intent.CODE_GENERATION: (
        _t("design", Role.ARCHITECT, "Outline the design: components, interfaces, data "
           "structures and edge cases the implementation must handle.", simple_skip=True),
        _t("implement", Role.DEVELOPER, "Implement the request as complete, working code "
           "following the design.", "design"),
        _t("review", Role.REVIEWER, "Review the implementation for correctness, security "
           "and clarity; list concrete fixes.", "implement"),
        _t("test", Role.QA, "Write tests for the implementation, covering the main path and "
           "the edge cases.", "implement"),
        _t(ANSWER_KEY, Role.ASSISTANT, _AGGREGATE, "review", "test"),
    ),
    Intent.CODE_REVIEW: (
        _t("review", Role.REVIEWER, "Review the code: correctness, bugs, readability and "
           "maintainability, with line-level suggestions."),
        _t("security", Role.REVIEWER, "Review the same code for security and reliability "
           "problems only: injection, secrets, error handling, concurrency."),
        _t(ANSWER_KEY, Role.ASSISTANT, _AGGREGATE, "review", "security"),
    ),
    Intent.DEBUGGING: (
        _t("diagnose", Role.DEVELOPER, "Find the most likely root cause of the problem; "
           "explain the evidence."),
        _t("fix", Role.DEVELOPER, "Propose the fix as a concrete code change.", "diagnose"),
        _t("verify", Role.QA, "Describe how to verify the fix, including a regression test.",
           "fix"),
        _t(ANSWER_KEY, Role.ASSISTANT, _AGGREGATE, "verify"),
    ),
    Intent.REFACTORING: (
        _t("plan", Role.ARCHITECT, "Plan the refactoring: target structure and safe steps "
           "that keep behaviour unchanged.", simple_skip=True),
        _t("refactor", Role.DEVELOPER, "Carry out the refactoring; the behaviour must not "
           "change.", "plan"),
        _t("review", Role.REVIEWER, "Check the refactoring keeps behaviour and improves the "
           "code.", "refactor"),
        _t(ANSWER_KEY, Role.ASSISTANT, _AGGREGATE, "review"),
    ),
    Intent.TESTING: (
        _t("strategy", Role.QA, "Decide what to test: cases, boundaries, failure modes and "
           "fixtures.", simple_skip=True),
        _t("tests", Role.QA, "Write the tests.", "strategy"),
        _t("review", Role.REVIEWER, "Review the tests: can each one fail, do they cover the "
           "risks?", "tests"),
        _t(ANSWER_KEY, Role.ASSISTANT, _AGGREGATE, "review"),
    ),
    Intent.ARCHITECTURE_DESIGN: (
        _t("design", Role.ARCHITECT, "Propose the architecture: components, boundaries, data "
           "model, interfaces and trade-offs."),
        _t("critique", Role.REVIEWER, "Critique the design: risks, failure modes, simpler "
           "alternatives.", "design"),
        _t("operations", Role.DEVOPS, "Assess how the design is deployed, scaled and "
           "monitored.", "design"),
        _t(ANSWER_KEY, Role.ASSISTANT, _AGGREGATE, "critique", "operations"),
    ),
    Intent.DOCUMENTATION: (
        _t("gather", Role.RESEARCHER, "Collect the facts the documentation needs from the "
           "request and context.", simple_skip=True),
        _t("write", Role.WRITER, "Write the documentation.", "gather"),
        _t("review", Role.REVIEWER, "Check the documentation is accurate and complete.",
           "write"),
        _t(ANSWER_KEY, Role.ASSISTANT, _AGGREGATE, "review"),
    ),
    Intent.DEVOPS_DEPLOYMENT: (
        _t("plan", Role.DEVOPS, "Plan the infrastructure or pipeline change and its rollout "
           "and rollback.", simple_skip=True),
        _t("implement", Role.DEVOPS, "Write the configuration, scripts or manifests.", "plan"),
        _t("review", Role.REVIEWER, "Review for security, reliability and cost.", "implement"),
        _t(ANSWER_KEY, Role.ASSISTANT, _AGGREGATE, "review"),
    ),
    Intent.DATA_ANALYSIS: (
        _t("analyse", Role.ANALYST, "Analyse the data: method, computations and findings."),
        _t("report", Role.WRITER, "Turn the findings into a short report with the key "
           "numbers and caveats.", "analyse"),
        _t(ANSWER_KEY, Role.ASSISTANT, _AGGREGATE, "report"),
    ),
    Intent.RESEARCH_QUESTION: (
        _t("research", Role.RESEARCHER, "Answer the question accurately, with the reasoning "
           "and sources of uncertainty."),
        _t(ANSWER_KEY, Role.WRITER, "Write the final answer clearly and concisely.",
           "research"),
    ),
    Intent.FILE_OPERATION: (
        _t(ANSWER_KEY, Role.OPERATOR, "Carry out the file operation in the workspace with "
           "the file tools, then report what you found or changed."),
    ),
    Intent.GENERAL_CHAT: (
        _t(ANSWER_KEY, Role.ASSISTANT, "Reply to the user briefly and helpfully."),
    ),
}  # fmt: skip


def _with_answer(steps: list[PlanStep]) -> list[PlanStep]:
    sinks = [s.key for s in steps if not any(s.key in o.depends_on for o in steps)]
    if len(sinks) == 1 and steps[-1].key == sinks[0]:
        return steps
    if any(s.key == ANSWER_KEY for s in steps):
        raise InvalidInput(
            f"plan: '{ANSWER_KEY}' must be the last step, and the only one nothing depends on"
        )
    return [*steps, PlanStep(ANSWER_KEY, Role.ASSISTANT, _AGGREGATE, tuple(sinks))]


class Planner:
    def __init__(self, routes: Mapping[Intent, Sequence[StepTemplate]] = ROUTES) -> None:
        self._routes = routes

    def plan(self, analysis: Analysis) -> Plan:
        simple = analysis.complexity == "low"
        kept = [t for t in self._routes[analysis.primary] if not (simple and t.skip_when_simple)]
        kept_keys = {t.key for t in kept}
        steps = [
            PlanStep(
                t.key, t.agent, t.instruction, tuple(d for d in t.depends_on if d in kept_keys)
            )
            for t in kept
        ]
        return Plan(tuple(_with_answer(steps)), analysis.primary.value)

    def plan_for_agents(self, roles: Sequence[str]) -> Plan:
        """The client's roles in order, each step seeing the previous one's output."""
        if not roles:
            raise InvalidInput("agents: give at least one role")
        steps: list[PlanStep] = []
        for index, name in enumerate(roles):
            role = parse_role(name)
            previous = (steps[-1].key,) if steps else ()
            steps.append(
                PlanStep(
                    f"{role.value}_{index + 1}",
                    role,
                    f"Work on the request as the {role.value}"
                    + (", building on the previous step." if previous else "."),
                    previous,
                )
            )
        if len(steps) > 1:
            steps.append(PlanStep(ANSWER_KEY, Role.ASSISTANT, _AGGREGATE, (steps[-1].key,)))
        return Plan(tuple(steps), "agents")

    def for_task(self, options: Mapping[str, Any], analysis: Analysis) -> Plan:
        """The plan of a task: the client's (``plan``, validated when it was submitted),
        their roles in order (``agents``), or the route of the analysed intent."""
        if "plan" in options:
            return Plan.from_dict(options["plan"])
        if "agents" in options:
            return self.plan_for_agents(options["agents"])
        return self.plan(analysis)

    def fallback(self, failed: Plan) -> Plan:
        """One assistant step in place of ``failed``, a plan whose step failed for good
        (the degraded plan remembers it)."""
        return Plan((PlanStep(FALLBACK_KEY, Role.ASSISTANT, _FALLBACK),), "degraded", failed)

    def custom(self, steps: Sequence[Mapping[str, Any]]) -> Plan:
        """A plan given by the client, validated, with an answer step added if needed."""
        parsed = [
            PlanStep(
                str(s["key"]),
                parse_role(str(s["agent"])),
                str(s["instruction"]),
                tuple(str(d) for d in s.get("depends_on", ())),
            )
            for s in steps
        ]
        if not parsed:
            raise InvalidInput("plan: a plan needs at least one step")
        order = topological_order(parsed)
        if order is not None:  # keep the client's steps in a dependency-respecting order
            by_key = {s.key: s for s in parsed}
            if len(by_key) == len(parsed):
                parsed = [by_key[k] for k in order]
        return Plan(tuple(_with_answer(parsed)), "custom")
