"""The typed answer models send exactly what the domain writes: every key, nothing
added (a key that is absent stays absent), and a key a newer domain adds goes out too."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import uuid4

from chatsys.api.nlu.schemas import AnalysisOut
from chatsys.api.tasks.schemas import PlanOut, TaskOut
from chatsys.domain.nlu import RuleBasedAnalyzer
from chatsys.domain.planning.planner import Planner
from chatsys.domain.tasks.model import (
    FailureKind,
    StepRecord,
    StepStatus,
    Task,
    TaskError,
    TaskStatus,
    Usage,
)

NOW = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)


def _json(value: object) -> object:
    return json.loads(json.dumps(value))


def test_a_task_answer_is_the_domains_json_part_by_part() -> None:
    analysis = RuleBasedAnalyzer().analyze("What is the difference between TCP and UDP?")
    planner = Planner()
    degraded = planner.fallback(planner.plan(analysis))
    failed = StepRecord("research", "researcher", "i", (), StepStatus.FAILED,
                        error={"message": "boom", "attempt": 2}, attempt=2)  # fmt: skip
    task = Task(uuid4(), "o", "x", TaskStatus.FAILED, NOW, analysis=analysis, plan=degraded,
                error=TaskError("gave up", FailureKind.ATTEMPTS), usage=Usage(3, 2, 0.5),
                steps=[failed])  # fmt: skip
    shown = json.loads(TaskOut.of(task).model_dump_json())
    assert shown["analysis"] == _json(analysis.as_dict())
    assert shown["plan"] == _json(degraded.as_dict())  # with the plan it replaced
    assert "degraded_from" in shown["plan"]
    assert "degraded_from" not in shown["plan"]["degraded_from"]  # absent, not null
    assert shown["error"] == {"message": "gave up", "type": "attempts"}  # no "step": null
    assert shown["steps"][0]["error"] == {"message": "boom", "attempt": 2}
    assert shown["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
                              "cost_usd": 0.5}  # fmt: skip


def test_a_key_the_domain_adds_is_not_dropped() -> None:
    analysis = RuleBasedAnalyzer().analyze("hello there").as_dict()
    newer = {**analysis, "language": "en", "context": {**analysis["context"], "turns": 3}}
    assert json.loads(AnalysisOut.model_validate(newer).model_dump_json()) == _json(newer)
    plan = Planner().plan_for_agents(["qa"]).as_dict()
    newer_plan = {**plan, "steps": [{**s, "timeout_s": 30} for s in plan["steps"]]}
    assert json.loads(PlanOut.model_validate(newer_plan).model_dump_json()) == newer_plan
