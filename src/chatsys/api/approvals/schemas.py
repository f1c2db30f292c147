"""Request and response models of tool approvals."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from chatsys.api.text import TextOrNone
from chatsys.domain.approvals.model import REASON_MAX, Approval

ApprovalStatusName = Literal["pending", "approved", "denied", "expired"]


class ApprovalDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "deny"] = Field(
        description="approve: the tool runs and the model gets its result; deny: it does not "
        "run and the model is told so (with the reason)"
    )
    reason: TextOrNone = Field(default=None, max_length=REASON_MAX)


class ApprovalOut(BaseModel):
    id: UUID
    task_id: UUID
    step: str
    agent: str
    tool: str = Field(description="the tool as the agent calls it: server__tool")
    call_id: str | None
    arguments: dict[str, Any]
    status: ApprovalStatusName
    reason: str | None
    decided_by: str | None
    created_at: datetime
    decided_at: datetime | None
    expires_at: datetime

    @classmethod
    def of(cls, approval: Approval) -> ApprovalOut:
        return cls(
            id=approval.id,
            task_id=approval.task_id,
            step=approval.step,
            agent=approval.agent,
            tool=approval.tool,
            call_id=approval.call_id,
            arguments=approval.arguments,
            status=approval.status.value,
            reason=approval.reason,
            decided_by=approval.decided_by,
            created_at=approval.created_at,
            decided_at=approval.decided_at,
            expires_at=approval.expires_at,
        )


class ApprovalListOut(BaseModel):
    items: list[ApprovalOut]
