from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from chatsys.api.tasks.schemas import task_json
from chatsys.domain.nlu import RuleBasedAnalyzer
from chatsys.domain.planning.planner import Planner
from chatsys.domain.shared.errors import Conflict, InvalidInput
from chatsys.domain.shared.text import Title
from chatsys.domain.tasks.model import (
    FailureKind,
    IllegalTransition,
    Task,
    TaskError,
    TaskResult,
    TaskStatus,
    can_transition,
)

Q, R, W = TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.AWAITING_APPROVAL
S, F, C = TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED
# The state machine, written out once more by hand: every move a task may make.
LEGAL = {
    (Q, R), (Q, C), (Q, F),
    (R, W), (R, S), (R, F), (R, C), (R, Q),
    (W, R), (W, F), (W, C), (W, Q),
}  # fmt: skip
MOVES = list(itertools.product(TaskStatus, TaskStatus))


def task_in(status: TaskStatus, *, worker_id: str | None = None, attempt: int = 0) -> Task:
    return Task(uuid4(), "o", "x", status, datetime.now(UTC), worker_id=worker_id, attempt=attempt)


@pytest.mark.parametrize(("current", "target"), [m for m in MOVES if m in LEGAL])
def test_every_legal_move_is_taken(current: TaskStatus, target: TaskStatus) -> None:
    task = task_in(current)
    task.move_to(target)
    assert task.status is target


@pytest.mark.parametrize(("current", "target"), [m for m in MOVES if m not in LEGAL])
def test_every_other_move_is_refused_and_changes_nothing(
    current: TaskStatus, target: TaskStatus
) -> None:
    task = task_in(current)
    with pytest.raises(IllegalTransition) as refused:
        task.move_to(target)
    assert task.status is current
    assert (refused.value.current, refused.value.target) == (current, target)
    assert f"from {current.value} to {target.value}" in refused.value.detail
    assert isinstance(refused.value, Conflict)  # the API answers 409


@pytest.mark.parametrize("terminal", [s for s in TaskStatus if s.is_terminal])
def test_terminal_states_never_change(terminal: TaskStatus) -> None:
    assert not any(can_transition(terminal, other) for other in TaskStatus)
    task = task_in(terminal)
    for other in TaskStatus:
        with pytest.raises(IllegalTransition):
            task.move_to(other)
    with pytest.raises(IllegalTransition):
        task.requeue(spend_attempt=True)
    with pytest.raises(IllegalTransition):
        task.end(TaskStatus.FAILED, datetime.now(UTC))
    assert task.status is terminal


def test_a_requeued_task_has_no_runner_and_a_shutdown_does_not_spend_its_attempt() -> None:
    swept = task_in(R, worker_id="w1", attempt=2)
    swept.requeue(spend_attempt=True)
    assert (swept.status, swept.worker_id, swept.attempt) == (Q, None, 2)
    handed_back = task_in(W, worker_id="w1", attempt=2)
    handed_back.requeue(spend_attempt=False)
    assert (handed_back.status, handed_back.worker_id, handed_back.attempt) == (Q, None, 1)


def test_an_ended_task_has_no_runner_and_knows_when_it_ended() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    task = task_in(W, worker_id="w1")
    task.end(F, at)
    assert (task.status, task.worker_id, task.finished_at) == (F, None, at)
    with pytest.raises(ValueError, match="not a terminal status"):
        task_in(R).end(Q, at)


def test_the_normal_life_of_a_task_is_allowed() -> None:
    path = [
        TaskStatus.QUEUED,
        TaskStatus.RUNNING,
        TaskStatus.AWAITING_APPROVAL,
        TaskStatus.RUNNING,
        TaskStatus.SUCCEEDED,
    ]
    assert all(can_transition(a, b) for a, b in itertools.pairwise(path))


def test_a_queued_task_cannot_jump_to_succeeded() -> None:
    assert not can_transition(TaskStatus.QUEUED, TaskStatus.SUCCEEDED)


def test_title_is_normalised_and_bounded() -> None:
    assert Title(" a\n b ").value == "a b"
    with pytest.raises(InvalidInput, match="limit is 200"):
        Title("y" * 201)


def test_a_result_and_an_error_keep_the_shape_clients_know() -> None:
    result = TaskResult("the answer", "answer", "assistant")
    assert result.as_dict() == {"text": "the answer", "step": "answer", "agent": "assistant"}
    assert TaskResult.from_dict(result.as_dict()) == result
    step_error = TaskError("step 'a' failed: boom", FailureKind.LLM, "a")
    assert step_error.as_dict() == {"message": "step 'a' failed: boom", "step": "a", "type": "llm"}
    timeout = TaskError("too long", FailureKind.TIMEOUT)
    assert timeout.as_dict() == {"message": "too long", "type": "timeout"}  # no "step" key
    for error in (step_error, timeout, TaskError("gave up", FailureKind.ATTEMPTS)):
        assert TaskError.from_dict(json.loads(json.dumps(error.as_dict()))) == error
    with pytest.raises(ValueError, match="'nope' is not a valid FailureKind"):
        TaskError.from_dict({"message": "m", "type": "nope"})


def test_the_api_shows_the_typed_fields_as_the_json_it_always_showed() -> None:
    analysis = RuleBasedAnalyzer().analyze("write a function that reverses a string")
    plan = Planner().plan(analysis)
    task = task_in(S)
    task.analysis, task.plan = analysis, plan
    task.result = TaskResult("done", plan.final.key, plan.final.agent.value)
    shown = task_json(task)
    assert shown["analysis"] == analysis.as_dict()
    assert shown["plan"] == {"shape": plan.shape, "steps": [s.as_dict() for s in plan.steps]}
    assert shown["result"] == {"text": "done", "step": plan.final.key, "agent": "assistant"}
    assert shown["error"] is None
