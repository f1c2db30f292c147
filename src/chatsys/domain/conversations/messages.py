"""Reading a conversation's messages."""

from __future__ import annotations

from uuid import UUID

from chatsys.domain.conversations.model import MessageRole
from chatsys.domain.conversations.ports import ConversationsUnitOfWork, StoredMessage
from chatsys.domain.shared.errors import NotFound
from chatsys.domain.shared.pagination import Page, cut_page, decode_cursor
from chatsys.domain.shared.uow import Factory


class ListMessages:
    """A conversation's messages, oldest first, keyset-paginated."""

    def __init__(self, uow: Factory[ConversationsUnitOfWork]) -> None:
        self._uow = uow

    async def execute(
        self, conversation_id: UUID, *, owner: str | None, limit: int, cursor: str | None
    ) -> Page[StoredMessage]:
        after = decode_cursor(cursor) if cursor else None
        async with self._uow() as uow:
            if await uow.conversations.get(conversation_id, owner=owner) is None:
                raise NotFound(f"conversation {conversation_id} does not exist")
            rows = await uow.messages.page(conversation_id, limit=limit + 1, after=after)
        return cut_page(rows, limit)


async def earlier_turns(
    uow: ConversationsUnitOfWork, conversation_id: UUID, task_id: UUID, *, limit: int
) -> list[StoredMessage]:
    """The conversation's last ``limit`` user and assistant messages, without the request
    of ``task_id`` itself (its agents are given that separately); oldest first."""
    messages = await uow.messages.recent(conversation_id, limit=limit + 1)
    turns = [
        m
        for m in messages
        if m.role in (MessageRole.USER, MessageRole.ASSISTANT)
        and not (m.task_id == task_id and m.role is MessageRole.USER)
    ]
    return turns[-limit:]
