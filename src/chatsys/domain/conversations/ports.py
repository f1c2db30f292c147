"""Ports of conversations and their messages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from chatsys.domain.access.ports import AuditLog
from chatsys.domain.conversations.model import Conversation, MessageRole
from chatsys.domain.shared.idempotency import IdempotencyUnitOfWork


class ConversationRepository(Protocol):
    """Conversations, scoped to their owner."""

    async def add(self, conversation: Conversation) -> None: ...

    async def get(self, conversation_id: UUID, *, owner: str | None) -> Conversation | None:
        """``owner=None``: whoever owns it."""
        ...

    async def list_for_owner(
        self,
        owner: str | None,
        *,
        limit: int,
        before: tuple[datetime, UUID] | None,
    ) -> Sequence[Conversation]: ...


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: UUID
    conversation_id: UUID
    role: MessageRole
    content: str
    created_at: datetime
    task_id: UUID | None = None
    agent: str | None = None


class MessageRepository(Protocol):
    async def add(self, message: StoredMessage) -> None: ...

    async def page(
        self, conversation_id: UUID, *, limit: int, after: tuple[datetime, UUID] | None
    ) -> Sequence[StoredMessage]:
        """Oldest first, after the given position."""
        ...

    async def recent(self, conversation_id: UUID, *, limit: int) -> Sequence[StoredMessage]:
        """The last ``limit`` messages, oldest first."""
        ...


class ConversationsUnitOfWork(IdempotencyUnitOfWork, Protocol):
    @property
    def conversations(self) -> ConversationRepository: ...

    @property
    def messages(self) -> MessageRepository: ...

    @property
    def audit(self) -> AuditLog: ...
