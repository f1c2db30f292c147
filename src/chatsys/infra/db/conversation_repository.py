"""The SQL adapter of conversations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from chatsys.domain.conversations.model import Conversation
from chatsys.infra.db.models import ConversationRow


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
