"""One example of each event, for the document: made by the domain where it can be
(``Analysis``, ``Plan``, ``Usage``, ``Approval`` write their parts as the server sends
them), so an example cannot drift from what is sent. The tests validate every example
against its schema."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from chatsys.domain.approvals.model import Approval, ApprovalStatus, arguments_digest
from chatsys.domain.nlu import RuleBasedAnalyzer
from chatsys.domain.planning.planner import Planner
from chatsys.domain.tasks.model import EventType, FailureKind, TaskError, TaskResult, Usage

TASK_ID = "0b9e6c4e-8a1f-4a8e-9a57-4d1c3f0e2b71"
CONVERSATION_ID = "7c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
_AT = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)

_ANALYSIS = RuleBasedAnalyzer().analyze("Write a Python function that slugifies a title")
_PLAN = Planner().plan(_ANALYSIS)
_STEP = _PLAN.steps[0]
_USAGE = Usage(412, 96, 0.00012).as_dict()
_TEXT = "def slugify(title: str) -> str:\n    ..."
_ARGUMENTS = {"path": "notes/todo.md"}
_APPROVAL = Approval(
    UUID("5d2f7a0e-3c41-4b8e-8f36-2a9d1c7e4b10"), UUID(TASK_ID), "answer", "operator",
    "workspace__write_file", _ARGUMENTS, arguments_digest(_ARGUMENTS), ApprovalStatus.PENDING,
    _AT, _AT + timedelta(minutes=10), "call_3f9a1c2e",
)  # fmt: skip
_ERROR = "RateLimitError (429): the provider is rate limiting this key"
_STEP_DATA = {"step": _STEP.key, "agent": _STEP.agent.value}

_DATA: dict[EventType, dict[str, Any]] = {
    EventType.TASK_CREATED: {"status": "queued", "conversation_id": None},
    EventType.TASK_STARTED: {"attempt": 1, "worker": "host-1:4120:9c1d2e3f"},
    EventType.TASK_ANALYZED: {"analysis": _ANALYSIS.as_dict()},
    EventType.TASK_PLANNED: {"plan": _PLAN.as_dict()},
    EventType.TASK_REQUEUED: {"reason": "worker heartbeat lapsed"},
    EventType.STEP_STARTED: {**_STEP_DATA, "attempt": 1},
    EventType.MESSAGE_DELTA: {**_STEP_DATA, "attempt": 1, "text": "def slugify("},
    EventType.MESSAGE_COMPLETED: {**_STEP_DATA, "text": _TEXT, "model": "gpt-4o-mini"},
    EventType.TOOL_CALL_STARTED: {
        "step": _STEP.key, "call_id": "call_7b2e", "tool": "chatsys__calculate",
        "arguments": {"expression": "6 * 7"},
    },
    EventType.TOOL_CALL_COMPLETED: {
        "step": _STEP.key, "call_id": "call_7b2e", "tool": "chatsys__calculate",
        "result": '{"expression": "6 * 7", "value": 42.0}', "truncated": False,
        "is_error": False,
    },
    EventType.APPROVAL_REQUESTED: _APPROVAL.requested_event(),
    EventType.APPROVAL_DECIDED: _APPROVAL.decided(
        ApprovalStatus.APPROVED, reason=None, by="dana", at=_AT + timedelta(seconds=40)
    ).decided_event(),
    EventType.STEP_RETRYING: {
        "step": _STEP.key, "attempt": 1, "error": _ERROR, "retry_in_s": 0.5,
    },
    EventType.STEP_COMPLETED: {**_STEP_DATA, "usage": _USAGE},
    EventType.STEP_FAILED: {**_STEP_DATA, "attempt": 3, "error": _ERROR},
    EventType.STEP_CANCELLED: {**_STEP_DATA, "attempt": 1, "was": "running"},
    EventType.PLAN_DEGRADED: {
        "failed_step": _STEP.key, "reason": _ERROR,
        "plan": replace(Planner().fallback(_PLAN), degraded_from=None).as_dict(),
    },
    EventType.USAGE_UPDATED: {"usage": _USAGE},
    EventType.TASK_SUCCEEDED: {
        "result": TaskResult(_TEXT, _PLAN.final.key, _PLAN.final.agent.value).as_dict(),
        "usage": _USAGE,
    },
    EventType.TASK_FAILED: {
        "error": TaskError(f"step '{_STEP.key}' failed: {_ERROR}", FailureKind.LLM,
                           _STEP.key).as_dict(),
        "usage": _USAGE,
    },
    EventType.TASK_CANCELLED: {"reason": "cancel requested"},
}  # fmt: skip


def event_example(kind: str) -> dict[str, Any]:
    """An event of type ``kind`` as the streams and the event page send it."""
    seq = list(EventType).index(EventType(kind)) + 1
    ts = (_AT + timedelta(seconds=seq)).isoformat().replace("+00:00", "Z")
    return {"task_id": TASK_ID, "seq": seq, "type": kind, "data": _DATA[EventType(kind)], "ts": ts}
