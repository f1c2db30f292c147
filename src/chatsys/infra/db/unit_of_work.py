"""The SQL unit of work: one session and transaction, every repository on it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chatsys.domain.tasks.model import TaskEvent
from chatsys.infra.db.access_repository import SqlApiKeys, SqlAuditLog
from chatsys.infra.db.approval_repository import SqlApprovalRepository
from chatsys.infra.db.conversation_repository import SqlConversationRepository
from chatsys.infra.db.event_log import SqlEventLog
from chatsys.infra.db.idempotency_repository import SqlIdempotencyRecords
from chatsys.infra.db.message_repository import SqlMessageRepository
from chatsys.infra.db.outbox import SqlOutbox
from chatsys.infra.db.task_repository import SqlTaskRepository
from chatsys.infra.db.webhook_repository import SqlWebhookDeliveries, SqlWebhookEndpoints


class EventPublisher(Protocol):
    async def publish(self, events: Sequence[tuple[TaskEvent, UUID | None]]) -> None: ...


_PUBLISHING: set[asyncio.Task[None]] = set()  # publishes whose caller was cancelled


async def _publish_regardless(
    publisher: EventPublisher, events: Sequence[tuple[TaskEvent, UUID | None]]
) -> None:
    """Committed events go out even when the caller is cancelled meanwhile (a worker
    shutting down, a run stopped): live subscribers would otherwise wait for their
    quiet check to find them in the log."""
    publishing = asyncio.ensure_future(publisher.publish(events))
    try:
        await asyncio.shield(publishing)
    except asyncio.CancelledError:
        _PUBLISHING.add(publishing)  # the loop keeps only weak references to tasks
        publishing.add_done_callback(_PUBLISHING.discard)
        raise


class SqlUnitOfWork:
    """One session, one transaction. Leaving the block without ``commit`` rolls back.

    Events appended in it are handed to ``publisher`` once the commit succeeded.
    """

    conversations: SqlConversationRepository
    messages: SqlMessageRepository
    tasks: SqlTaskRepository
    events: SqlEventLog
    outbox: SqlOutbox
    webhooks: SqlWebhookEndpoints
    deliveries: SqlWebhookDeliveries
    api_keys: SqlApiKeys
    audit: SqlAuditLog
    approvals: SqlApprovalRepository
    idempotency: SqlIdempotencyRecords

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        publisher: EventPublisher | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._publisher = publisher

    async def __aenter__(self) -> Self:
        self._session = self._session_factory()
        self.conversations = SqlConversationRepository(self._session)
        self.messages = SqlMessageRepository(self._session)
        self.events = SqlEventLog(self._session)
        self.tasks = SqlTaskRepository(self._session, self.events)
        self.outbox = SqlOutbox(self._session)
        self.api_keys = SqlApiKeys(self._session)
        self.audit = SqlAuditLog(self._session)
        self.webhooks = SqlWebhookEndpoints(self._session)
        self.deliveries = SqlWebhookDeliveries(self._session)
        self.approvals = SqlApprovalRepository(self._session)
        self.idempotency = SqlIdempotencyRecords(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._session.rollback()
        finally:
            await self._session.close()

    async def commit(self) -> None:
        await self._session.commit()
        appended, self.events.appended = self.events.appended, []
        if appended and self._publisher is not None:
            await _publish_regardless(self._publisher, appended)

    async def rollback(self) -> None:
        await self._session.rollback()
        self.events.appended = []
