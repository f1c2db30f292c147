"""Use cases on conversations."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from chatsys.domain.access.model import AuditEntry
from chatsys.domain.conversations.model import Conversation
from chatsys.domain.conversations.ports import ConversationsUnitOfWork
from chatsys.domain.shared.clock import Clock
from chatsys.domain.shared.errors import InvalidInput, NotFound
from chatsys.domain.shared.idempotency import IdempotentRequest, claim_key
from chatsys.domain.shared.pagination import Page, cut_page, decode_cursor
from chatsys.domain.shared.text import Title
from chatsys.domain.shared.uow import Factory

METADATA_MAX_KEYS = 50


class StartConversation:
    """Create a conversation owned by ``owner``.

    Rules: the title is trimmed and must be 1..200 characters (default
    "New conversation"); metadata is a flat JSON object of at most 50 keys. Under an
    ``Idempotency-Key`` (``once``, see ``domain.shared.idempotency``) a retry gets
    the first answer and starts nothing.
    """

    def __init__(self, uow: Factory[ConversationsUnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def execute(
        self,
        *,
        owner: str,
        title: str | None,
        metadata: dict[str, Any] | None,
        actor: str = "system",
        once: IdempotentRequest[Conversation] | None = None,
    ) -> Conversation:
        metadata = dict(metadata or {})
        if len(metadata) > METADATA_MAX_KEYS:
            raise InvalidInput(
                f"metadata has {len(metadata)} keys; the limit is {METADATA_MAX_KEYS}"
            )
        now = self._clock.now()
        conversation = Conversation(
            id=uuid4(),
            owner=owner,
            title=Title(title if title is not None else "New conversation").value,
            created_at=now,
            updated_at=now,
            metadata=metadata,
        )
        request = {"title": title, "metadata": metadata}
        async with self._uow() as uow:
            claim = await claim_key(uow, once, "conversation.create", request, at=now)
            await uow.conversations.add(conversation)
            await uow.audit.add(
                AuditEntry("conversation.create", actor, target=f"conversation:{conversation.id}")
            )
            await claim.record(conversation)
            await uow.commit()
        return conversation


class GetConversation:
    """Return one conversation of ``owner``; someone else's is reported as not found."""

    def __init__(self, uow: Factory[ConversationsUnitOfWork]) -> None:
        self._uow = uow

    async def execute(self, conversation_id: UUID, *, owner: str | None) -> Conversation:
        async with self._uow() as uow:
            found = await uow.conversations.get(conversation_id, owner=owner)
        if found is None:
            raise NotFound(f"conversation {conversation_id} does not exist")
        return found


class ListConversations:
    """Newest first, keyset-paginated by an opaque cursor (stable under inserts)."""

    def __init__(self, uow: Factory[ConversationsUnitOfWork]) -> None:
        self._uow = uow

    async def execute(
        self, *, owner: str | None, limit: int, cursor: str | None
    ) -> Page[Conversation]:
        before = decode_cursor(cursor) if cursor else None
        async with self._uow() as uow:
            rows = await uow.conversations.list_for_owner(owner, limit=limit + 1, before=before)
        return cut_page(rows, limit)
