"""Entities and value objects shared across the product.

The state machines live here so that every adapter (SQL check constraints, API
schemas) takes its vocabulary from one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from chatsys.domain.errors import InvalidInput


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED})

_TASK_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.QUEUED: frozenset({TaskStatus.RUNNING, TaskStatus.CANCELLED, TaskStatus.FAILED}),
    TaskStatus.RUNNING: frozenset(
        {
            TaskStatus.AWAITING_APPROVAL,
            TaskStatus.SUCCEEDED,
            TaskStatus.FAILED,
            TaskStatus.CANCELLED,
            TaskStatus.QUEUED,  # re-queued by the sweeper after a worker died
        }
    ),
    TaskStatus.AWAITING_APPROVAL: frozenset(
        {
            TaskStatus.RUNNING,
            TaskStatus.FAILED,
            TaskStatus.CANCELLED,
            TaskStatus.QUEUED,  # re-queued: its worker died, or shut down, while it waited
        }
    ),
    TaskStatus.SUCCEEDED: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}


def can_transition(current: TaskStatus, new: TaskStatus) -> bool:
    """Whether a task may move from ``current`` to ``new``. Terminal states never change."""
    return new in _TASK_TRANSITIONS[current]


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class MessageRole(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    AGENT = "agent"
    TOOL = "tool"
    SYSTEM = "system"


TITLE_MAX = 200


@dataclass(frozen=True, slots=True)
class Title:
    """A human-readable title: trimmed, non-empty, at most ``TITLE_MAX`` characters."""

    value: str

    def __post_init__(self) -> None:
        cleaned = " ".join(self.value.split())
        if not cleaned:
            raise InvalidInput("title must not be blank")
        if len(cleaned) > TITLE_MAX:
            raise InvalidInput(f"title is {len(cleaned)} characters long; the limit is {TITLE_MAX}")
        object.__setattr__(self, "value", cleaned)


@dataclass(slots=True)
class Conversation:
    """A thread of messages and the tasks started from it."""

    id: UUID
    owner: str
    title: str
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)
