"""Fakes of ``ConversationRepository`` and ``MessageRepository``."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from chatsys.domain.conversations.model import Conversation
from chatsys.domain.conversations.ports import StoredMessage
from tests.unit.fakes.session import Session


class FakeConversationRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    async def add(self, conversation: Conversation) -> None:
        self._s.check("conversations.add")
        self._s.tables.conversations[conversation.id] = copy.deepcopy(conversation)

    async def get(self, conversation_id: UUID, *, owner: str | None) -> Conversation | None:
        found = self._s.tables.conversations.get(conversation_id)
        if found is None or owner not in (None, found.owner):
            return None
        return copy.deepcopy(found)

    async def list_for_owner(
        self, owner: str | None, *, limit: int, before: tuple[datetime, UUID] | None
    ) -> Sequence[Conversation]:
        rows = sorted(
            (c for c in self._s.tables.conversations.values() if owner in (None, c.owner)),
            key=lambda c: (c.created_at, c.id),
            reverse=True,
        )
        if before is not None:
            rows = [c for c in rows if (c.created_at, c.id) < before]
        return [copy.deepcopy(c) for c in rows[:limit]]


class FakeMessageRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    async def add(self, message: StoredMessage) -> None:
        self._s.check("messages.add")
        self._s.tables.messages.append(message)

    def _of(self, conversation_id: UUID) -> list[StoredMessage]:
        return sorted(
            (m for m in self._s.tables.messages if m.conversation_id == conversation_id),
            key=lambda m: (m.created_at, m.id),
        )

    async def page(
        self, conversation_id: UUID, *, limit: int, after: tuple[datetime, UUID] | None
    ) -> Sequence[StoredMessage]:
        rows = self._of(conversation_id)
        if after is not None:
            rows = [m for m in rows if (m.created_at, m.id) > after]
        return rows[:limit]

    async def recent(self, conversation_id: UUID, *, limit: int) -> Sequence[StoredMessage]:
        return self._of(conversation_id)[-limit:] if limit > 0 else []
