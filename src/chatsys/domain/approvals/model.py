"""Tool approvals: a tool whose policy is ``ask`` runs only once a person approves the call.

Rules:
- every tool has a policy, decided in code and settings (never by the model):
  ``auto`` runs it, ``deny`` never offers it (and refuses it if called anyway),
  ``ask`` needs an approval for each call;
- there is one approval per (task, step, tool, arguments): asked again (the step
  re-run after a worker restart or a retry, or the same call made twice) the
  existing approval is reused, its decision if it has one, else it is waited on;
- a decision is taken once and never changes: ``approved`` or ``denied`` by the
  task's owner through the API, ``expired`` when nobody decided by ``expires_at``
  (the call is treated as denied), or when the task ends first; each decision is an
  ``approval.decided`` event;
- only a pending approval of an unfinished task that is not being cancelled can be
  decided (a conflict otherwise: cancel wins);
- while its runner waits on an approval the task is ``awaiting_approval``; a
  decision that leaves no approval of the task pending puts it back to ``running``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

REASON_MAX = 1000


class ToolPolicy(StrEnum):
    AUTO = "auto"
    ASK = "ask"
    DENY = "deny"


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self is not ApprovalStatus.PENDING


def arguments_digest(arguments: Mapping[str, Any]) -> str:
    """The same arguments (whatever their key order) give the same digest."""
    text = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Approval:
    """A person's decision on one tool call an agent wants to make."""

    id: UUID
    task_id: UUID
    step: str
    agent: str
    tool: str
    arguments: dict[str, Any]
    arguments_digest: str
    status: ApprovalStatus
    created_at: datetime
    expires_at: datetime
    call_id: str | None = None
    reason: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.expires_at < self.created_at:
            raise ValueError("an approval cannot expire before it was asked for")
        if self.status.is_final and self.decided_at is None:
            raise ValueError("a decided approval needs its decided_at")

    def decided(
        self, status: ApprovalStatus, *, reason: str | None, by: str | None, at: datetime
    ) -> Approval:
        if self.status.is_final:
            raise ValueError(f"approval {self.id} is already {self.status.value}")
        return replace(self, status=status, reason=reason, decided_by=by, decided_at=at)

    def requested_event(self) -> dict[str, Any]:
        return {
            "approval_id": str(self.id),
            "step": self.step,
            "agent": self.agent,
            "tool": self.tool,
            "call_id": self.call_id,
            "arguments": self.arguments,
            "expires_at": iso(self.expires_at),
        }

    def decided_event(self) -> dict[str, Any]:
        return {
            "approval_id": str(self.id),
            "step": self.step,
            "agent": self.agent,
            "tool": self.tool,
            "call_id": self.call_id,
            "status": self.status.value,
            "reason": self.reason,
            "decided_by": self.decided_by,
            "decided_at": iso(self.decided_at),
        }

    def refusal(self) -> str:
        """What the model is told when the call was not approved."""
        if self.status is ApprovalStatus.DENIED:
            who = f" by {self.decided_by}" if self.decided_by else ""
            why = f": {self.reason}" if self.reason else ""
            return (
                f"The call to '{self.tool}' was denied{who}{why}. The tool did not run; "
                "go on without its result."
            )
        why = f" ({self.reason})" if self.reason else ""
        return (
            f"The call to '{self.tool}' was not approved in time{why}. The tool did not run; "
            "go on without its result."
        )


def denied_by_policy(tool: str) -> str:
    return f"The tool '{tool}' is denied by policy; it did not run."
