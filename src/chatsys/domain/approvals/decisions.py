"""Deciding approvals (the owner, through the API) and listing them; see
``chatsys.domain.approvals.model`` for the rules."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from chatsys.domain.access.model import AuditEntry
from chatsys.domain.approvals.model import Approval, ApprovalStatus, iso
from chatsys.domain.approvals.ports import ApprovalsUnitOfWork
from chatsys.domain.shared.clock import Clock
from chatsys.domain.shared.errors import Conflict, NotFound
from chatsys.domain.shared.idempotency import IdempotentRequest, claim_key
from chatsys.domain.shared.uow import Factory
from chatsys.domain.tasks.model import EventType, Task, TaskStatus


async def expire_pending(uow: ApprovalsUnitOfWork, task: Task, at: datetime) -> None:
    """In the caller's transaction: the task ends, so its pending approvals expire."""
    reason = f"the task ended ({task.status.value}) before a decision"
    for approval in await uow.approvals.expire_pending(task.id, reason=reason, at=at):
        await uow.events.append(task.id, EventType.APPROVAL_DECIDED, approval.decided_event())


async def expire_dropped(uow: ApprovalsUnitOfWork, task_id: UUID, at: datetime) -> None:
    """In the caller's transaction: the task's plan was replaced (degraded), so the steps
    that asked for these approvals no longer run; their pending approvals expire."""
    for approval in await uow.approvals.list_for_task(task_id):
        if approval.status is not ApprovalStatus.PENDING:
            continue
        reason = f"the plan was degraded: step {approval.step} no longer runs"
        decided = await uow.approvals.decide(
            approval.decided(ApprovalStatus.EXPIRED, reason=reason, by=None, at=at)
        )
        if decided is not None:
            await uow.events.append(task_id, EventType.APPROVAL_DECIDED, decided.decided_event())


class DecideApproval:
    """The owner approves or denies a pending approval of one of their tasks.

    Rules: unknown task (or someone else's) or approval: not found; a finished task,
    a task being cancelled, an approval already decided or past its ``expires_at``:
    conflict. The decision is an ``approval.decided`` event; when no approval of the
    task is left pending, the task goes back to ``running`` (its runner, polling,
    picks the decision up and goes on).
    """

    def __init__(self, uow: Factory[ApprovalsUnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def execute(
        self,
        task_id: UUID,
        approval_id: UUID,
        *,
        owner: str | None,
        approve: bool,
        reason: str | None = None,
        actor: str = "system",
        decided_by: str | None = None,
        once: IdempotentRequest[Approval] | None = None,
    ) -> Approval:
        """``owner=None``: any owner's task (an admin). ``decided_by`` names the person
        (shown to the model and in the task); ``actor`` goes to the audit trail."""
        request = {"task_id": task_id, "approval_id": approval_id, "approve": approve,
                   "reason": reason}  # fmt: skip
        async with self._uow() as uow:
            claim = await claim_key(uow, once, "approval.decide", request, at=self._clock.now())
            task = await uow.tasks.lock(task_id)
            if task is None or (owner is not None and task.owner != owner):
                raise NotFound(f"task {task_id} does not exist")
            approval = await uow.approvals.get(approval_id)
            if approval is None or approval.task_id != task_id:
                raise NotFound(f"approval {approval_id} does not exist")
            if task.status.is_terminal:
                raise Conflict(f"task {task_id} is already {task.status.value}")
            if task.cancel_requested:
                raise Conflict(f"task {task_id} is being cancelled")
            if approval.status.is_final:
                raise Conflict(f"approval {approval_id} is already {approval.status.value}")
            now = self._clock.now()
            if now >= approval.expires_at:
                raise Conflict(f"approval {approval_id} expired at {iso(approval.expires_at)}")
            status = ApprovalStatus.APPROVED if approve else ApprovalStatus.DENIED
            decided = await uow.approvals.decide(
                approval.decided(status, reason=reason, by=decided_by or actor, at=now)
            )
            if decided is None:  # cannot happen under the task's row lock
                raise Conflict(f"approval {approval_id} was decided meanwhile")
            await uow.events.append(task_id, EventType.APPROVAL_DECIDED, decided.decided_event())
            await uow.audit.add(
                AuditEntry(
                    "approval.decide",
                    actor,
                    target=f"approval:{approval_id}",
                    task_id=task_id,
                    details={"decision": status.value},
                )
            )
            if (
                task.status is TaskStatus.AWAITING_APPROVAL
                and await uow.approvals.pending_count(task_id) == 0
            ):
                task.move_to(TaskStatus.RUNNING)
                await uow.tasks.set_status(task.id, task.status)
            await claim.record(decided)
            await uow.commit()
        return decided


class ListApprovals:
    """The approvals of one of the owner's tasks, oldest first."""

    def __init__(self, uow: Factory[ApprovalsUnitOfWork]) -> None:
        self._uow = uow

    async def execute(self, task_id: UUID, *, owner: str | None) -> Sequence[Approval]:
        async with self._uow() as uow:
            if await uow.tasks.get(task_id, owner=owner) is None:
                raise NotFound(f"task {task_id} does not exist")
            return await uow.approvals.list_for_task(task_id)
