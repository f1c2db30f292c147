from __future__ import annotations

import itertools

import pytest

from chatsys.domain.shared.errors import InvalidInput
from chatsys.domain.shared.text import Title
from chatsys.domain.tasks.model import TaskStatus, can_transition


@pytest.mark.parametrize("terminal", [s for s in TaskStatus if s.is_terminal])
def test_terminal_states_never_change(terminal: TaskStatus) -> None:
    assert not any(can_transition(terminal, other) for other in TaskStatus)


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
