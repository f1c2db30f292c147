"""Fake of ``ApprovalRepository``: one approval per (task, step, tool, arguments digest);
a decision is written only over a pending approval (as the SQL adapter's
``WHERE status = 'pending'``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from uuid import UUID

from chatsys.domain.approvals.model import Approval, ApprovalStatus
from tests.unit.fakes.session import Session


class FakeApprovalRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    @property
    def _rows(self) -> dict[UUID, Approval]:
        return self._s.tables.approvals

    async def add(self, approval: Approval) -> tuple[Approval, bool]:
        self._s.check("approvals.add")
        for existing in self._rows.values():
            same_call = (existing.task_id, existing.step, existing.tool, existing.arguments_digest)
            if same_call == (
                approval.task_id,
                approval.step,
                approval.tool,
                approval.arguments_digest,
            ):
                return existing, False
        self._rows[approval.id] = approval
        return approval, True

    async def get(self, approval_id: UUID) -> Approval | None:
        return self._rows.get(approval_id)

    async def list_for_task(self, task_id: UUID) -> Sequence[Approval]:
        found = [a for a in self._rows.values() if a.task_id == task_id]
        return sorted(found, key=lambda a: (a.created_at, a.id))

    async def decide(self, approval: Approval) -> Approval | None:
        stored = self._rows.get(approval.id)
        if stored is None or stored.status is not ApprovalStatus.PENDING:
            return None
        decided = replace(
            stored,
            status=approval.status,
            reason=approval.reason,
            decided_by=approval.decided_by,
            decided_at=approval.decided_at,
        )
        self._rows[approval.id] = decided
        return decided

    async def pending_count(self, task_id: UUID) -> int:
        return sum(1 for a in self._rows.values() if a.task_id == task_id and not a.status.is_final)

    async def expire_pending(
        self, task_id: UUID, *, reason: str, at: datetime
    ) -> Sequence[Approval]:
        expired = []
        for approval in await self.list_for_task(task_id):
            if approval.status is ApprovalStatus.PENDING:
                done = replace(
                    approval, status=ApprovalStatus.EXPIRED, reason=reason, decided_at=at
                )
                self._rows[approval.id] = done
                expired.append(done)
        return expired
