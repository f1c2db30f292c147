"""Approvals of a task's tool calls: list them, approve or deny one."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from chatsys.api.access.deps import ReaderDep, WriterDep
from chatsys.api.approvals.deps import DecideApprovalDep, ListApprovalsDep
from chatsys.api.approvals.schemas import ApprovalDecisionIn, ApprovalListOut, ApprovalOut
from chatsys.api.idempotency import IdempotencyKeyHeader, once, replayed
from chatsys.api.problems import problem_response
from chatsys.domain.shared.idempotency import Replayed

router = APIRouter(prefix="/v1/tasks", tags=["approvals"])


@router.get(
    "/{task_id}/approvals",
    response_model=ApprovalListOut,
    summary="The task's tool approvals, oldest first",
)
async def list_approvals(
    task_id: UUID, list_approvals: ListApprovalsDep, owner: ReaderDep
) -> ApprovalListOut:
    approvals = await list_approvals.execute(task_id, owner=owner)
    return ApprovalListOut(items=[ApprovalOut.of(a) for a in approvals])


@router.post(
    "/{task_id}/approvals/{approval_id}",
    response_model=ApprovalOut,
    summary="Approve or deny a pending tool call (409 when decided, expired or the task ended)",
    responses={
        409: problem_response(
            409,
            "The approval is already decided or expired, the task has ended or is "
            "being cancelled, or the Idempotency-Key was used with another request",
        )
    },
)
async def decide_approval(
    task_id: UUID,
    approval_id: UUID,
    body: ApprovalDecisionIn,
    decide_approval: DecideApprovalDep,
    principal: WriterDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ApprovalOut | Response:
    try:
        approval = await decide_approval.execute(
            task_id,
            approval_id,
            owner=principal.scope,
            approve=body.decision == "approve",
            reason=body.reason,
            actor=principal.actor,
            decided_by=principal.subject,
            once=once(principal, idempotency_key, ApprovalOut.of),
        )
    except Replayed as replay:
        return replayed(replay, 200)
    return ApprovalOut.of(approval)
