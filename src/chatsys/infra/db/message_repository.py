"""The SQL adapter of conversation messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast
from uuid import UUID

from sqlalchemy import Table, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chatsys.domain.conversations.model import MessageRole
from chatsys.domain.conversations.ports import StoredMessage
from chatsys.infra.db.models import MessageRow

# Each run's answer is posted through this: a prebuilt Core insert, its parameters given
# per call (bench/ runs).
_ADD = insert(cast(Table, MessageRow.__table__))


class SqlMessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, message: StoredMessage) -> None:
        params = {
            "id": message.id,
            "conversation_id": message.conversation_id,
            "task_id": message.task_id,
            "role": message.role.value,
            "agent": message.agent,
            "content": message.content,
            "created_at": message.created_at,
        }
        await self._session.execute(_ADD, params)

    @staticmethod
    def _to_message(row: MessageRow) -> StoredMessage:
        return StoredMessage(
            row.id,
            row.conversation_id,
            MessageRole(row.role),
            row.content,
            row.created_at,
            row.task_id,
            row.agent,
        )

    async def page(
        self, conversation_id: UUID, *, limit: int, after: tuple[datetime, UUID] | None
    ) -> Sequence[StoredMessage]:
        query = select(MessageRow).where(MessageRow.conversation_id == conversation_id)
        if after is not None:
            query = query.where(tuple_(MessageRow.created_at, MessageRow.id) > tuple_(*after))
        query = query.order_by(MessageRow.created_at, MessageRow.id).limit(limit)
        return [self._to_message(r) for r in await self._session.scalars(query)]

    async def recent(self, conversation_id: UUID, *, limit: int) -> Sequence[StoredMessage]:
        rows = await self._session.scalars(
            select(MessageRow)
            .where(MessageRow.conversation_id == conversation_id)
            .order_by(MessageRow.created_at.desc(), MessageRow.id.desc())
            .limit(limit)
        )
        return [self._to_message(r) for r in reversed(list(rows))]
