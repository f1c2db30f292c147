"""The unit of work of the task use cases: submitting, running, cancelling and ending a
task touch its conversation, its event log, the outbox, approvals and webhooks."""

from __future__ import annotations

from typing import Protocol

from chatsys.domain.approvals.ports import ApprovalsUnitOfWork
from chatsys.domain.conversations.ports import ConversationsUnitOfWork
from chatsys.domain.tasks.ports import Outbox
from chatsys.domain.webhooks.ports import WebhooksUnitOfWork


class TasksUnitOfWork(ConversationsUnitOfWork, ApprovalsUnitOfWork, WebhooksUnitOfWork, Protocol):
    @property
    def outbox(self) -> Outbox: ...
