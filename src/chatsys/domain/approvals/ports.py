"""Ports of tool-call approvals."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from chatsys.domain.access.ports import AuditLog
from chatsys.domain.approvals.model import Approval
from chatsys.domain.shared.idempotency import IdempotencyUnitOfWork
from chatsys.domain.tasks.ports import EventLog, TaskRepository


class ApprovalRepository(Protocol):
    """Approvals of tool calls; one per (task, step, tool, arguments digest)."""

    async def add(self, approval: Approval) -> tuple[Approval, bool]:
        """Insert ``approval``, or (when that call was asked for before) return the existing
        one; the flag says whether it was inserted."""
        ...

    async def get(self, approval_id: UUID) -> Approval | None: ...

    async def list_for_task(self, task_id: UUID) -> Sequence[Approval]:
        """Oldest first."""
        ...

    async def decide(self, approval: Approval) -> Approval | None:
        """Write the decision carried by ``approval`` if it is still pending in the
        database; None when it was decided already."""
        ...

    async def pending_count(self, task_id: UUID) -> int: ...

    async def expire_pending(
        self, task_id: UUID, *, reason: str, at: datetime
    ) -> Sequence[Approval]:
        """Expire every pending approval of the task; the ones expired."""
        ...


class ApprovalsUnitOfWork(IdempotencyUnitOfWork, Protocol):
    @property
    def approvals(self) -> ApprovalRepository: ...

    @property
    def tasks(self) -> TaskRepository: ...

    @property
    def events(self) -> EventLog: ...

    @property
    def audit(self) -> AuditLog: ...
