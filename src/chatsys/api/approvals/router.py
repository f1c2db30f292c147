"""Approvals of a task's tool calls: list them, approve or deny one."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from chatsys.api.access.deps import ReaderDep, ServicesDep, WriterDep
from chatsys.api.approvals.schemas import ApprovalDecisionIn, ApprovalListOut, ApprovalOut

router = APIRouter(prefix="/v1/tasks", tags=["approvals"])


@router.get(
    "/{task_id}/approvals",
    response_model=ApprovalListOut,
    summary="The task's tool approvals, oldest first",
)
async def list_approvals(task_id: UUID, services: ServicesDep, owner: ReaderDep) -> ApprovalListOut:
    approvals = await services.list_approvals.execute(task_id, owner=owner)
    return ApprovalListOut(items=[ApprovalOut.of(a) for a in approvals])


@router.post(
    "/{task_id}/approvals/{approval_id}",
    response_model=ApprovalOut,
    summary="Approve or deny a pending tool call (409 when decided, expired or the task ended)",
)
async def decide_approval(
    task_id: UUID,
    approval_id: UUID,
    body: ApprovalDecisionIn,
    services: ServicesDep,
    principal: WriterDep,
) -> ApprovalOut:
    approval = await services.decide_approval.execute(
        task_id,
        approval_id,
        owner=principal.scope,
        approve=body.decision == "approve",
        reason=body.reason,
        actor=principal.actor,
        decided_by=principal.subject,
    )
    return ApprovalOut.of(approval)
