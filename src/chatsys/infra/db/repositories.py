"""SQL adapters of the domain's repository ports, and the unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chatsys.domain.conversations.model import Conversation
from chatsys.domain.tasks.model import TaskEvent
from chatsys.infra.db.access_repository import SqlApiKeys, SqlAuditLog
from chatsys.infra.db.approval_repository import SqlApprovalRepository
from chatsys.infra.db.models import ConversationRow
from chatsys.infra.db.task_repository import (
    SqlEventLog,
    SqlMessageRepository,
    SqlOutbox,
    SqlTaskRepository,
)
from chatsys.infra.db.webhook_repository import SqlWebhookDeliveries, SqlWebhookEndpoints


def _to_conversation(row: ConversationRow) -> Conversation:
    return Conversation(
        id=row.id,
        owner=row.owner,
        title=row.title,
        created_at=row.created_at,
        updated_at=row.updated_at,
        metadata=dict(row.meta),
    )


class SqlConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, conversation: Conversation) -> None:
        self._session.add(
            ConversationRow(
                id=conversation.id,
                owner=conversation.owner,
                title=conversation.title,
                meta=conversation.metadata,
                created_at=conversation.created_at,
                updated_at=conversation.updated_at,
            )
        )

    async def get(self, conversation_id: UUID, *, owner: str | None) -> Conversation | None:
        query = select(ConversationRow).where(ConversationRow.id == conversation_id)
        if owner is not None:
            query = query.where(ConversationRow.owner == owner)
        row = await self._session.scalar(query)
        return None if row is None else _to_conversation(row)

    async def list_for_owner(
        self,
        owner: str | None,
        *,
        limit: int,
        before: tuple[datetime, UUID] | None,
    ) -> Sequence[Conversation]:
        query = select(ConversationRow)
        if owner is not None:
            query = query.where(ConversationRow.owner == owner)
        if before is not None:
            query = query.where(
                tuple_(ConversationRow.created_at, ConversationRow.id) < tuple_(*before)
            )
        query = query.order_by(ConversationRow.created_at.desc(), ConversationRow.id.desc())
        rows = await self._session.scalars(query.limit(limit))
        return [_to_conversation(r) for r in rows]


class EventPublisher(Protocol):
    async def publish(self, events: Sequence[tuple[TaskEvent, UUID | None]]) -> None: ...


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
        self.tasks = SqlTaskRepository(self._session)
        self.events = SqlEventLog(self._session)
        self.outbox = SqlOutbox(self._session)
        self.api_keys = SqlApiKeys(self._session)
        self.audit = SqlAuditLog(self._session)
        self.webhooks = SqlWebhookEndpoints(self._session)
        self.deliveries = SqlWebhookDeliveries(self._session)
        self.approvals = SqlApprovalRepository(self._session)
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
            await self._publisher.publish(appended)

    async def rollback(self) -> None:
        await self._session.rollback()
        self.events.appended = []
