"""Use cases on conversations."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID, uuid4

from chatsys.domain.errors import InvalidInput, NotFound
from chatsys.domain.identity import AuditEntry
from chatsys.domain.model import Conversation, Title
from chatsys.domain.ports import Clock, UnitOfWorkFactory

METADATA_MAX_KEYS = 50


class StartConversation:
    """Create a conversation owned by ``owner``.

    Rules: the title is trimmed and must be 1..200 characters (default
    "New conversation"); metadata is a flat JSON object of at most 50 keys.
    """

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def execute(
        self,
        *,
        owner: str,
        title: str | None,
        metadata: dict[str, Any] | None,
        actor: str = "system",
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
        async with self._uow() as uow:
            await uow.conversations.add(conversation)
            await uow.audit.add(
                AuditEntry("conversation.create", actor, target=f"conversation:{conversation.id}")
            )
            await uow.commit()
        return conversation


class GetConversation:
    """Return one conversation of ``owner``; someone else's is reported as not found."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def execute(self, conversation_id: UUID, *, owner: str | None) -> Conversation:
        async with self._uow() as uow:
            found = await uow.conversations.get(conversation_id, owner=owner)
        if found is None:
            raise NotFound(f"conversation {conversation_id} does not exist")
        return found


@dataclass(frozen=True, slots=True)
class Page:
    items: Sequence[Conversation]
    next_cursor: str | None


def encode_cursor(created_at: datetime, item_id: UUID) -> str:
    raw = f"{created_at.isoformat()}|{item_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        stamp, raw_id = base64.urlsafe_b64decode(padded).decode().split("|", 1)
        return datetime.fromisoformat(stamp), UUID(raw_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor is not one this API returned") from exc


class _Keyed(Protocol):
    @property
    def created_at(self) -> datetime: ...

    @property
    def id(self) -> UUID: ...


K = TypeVar("K", bound=_Keyed)


def cut_page(rows: Sequence[K], limit: int) -> tuple[list[K], str | None]:
    """``rows`` were fetched with ``limit + 1``: the page, and the cursor of the next one."""
    items = list(rows[:limit])
    if len(rows) <= limit:
        return items, None
    return items, encode_cursor(items[-1].created_at, items[-1].id)


class ListConversations:
    """Newest first, keyset-paginated by an opaque cursor (stable under inserts)."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def execute(self, *, owner: str | None, limit: int, cursor: str | None) -> Page:
        before = decode_cursor(cursor) if cursor else None
        async with self._uow() as uow:
            rows = await uow.conversations.list_for_owner(owner, limit=limit + 1, before=before)
        return Page(*cut_page(rows, limit))
