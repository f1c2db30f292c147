"""Keyset pagination: one page type and one opaque cursor for every list."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar
from uuid import UUID

from chatsys.domain.shared.errors import InvalidInput

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, and the cursor of the next (None: this is the last)."""

    items: Sequence[T]
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


def cut_page(rows: Sequence[K], limit: int) -> Page[K]:
    """``rows`` were fetched with ``limit + 1``: the page, with the cursor of the next one."""
    items = list(rows[:limit])
    if len(rows) <= limit:
        return Page(items, None)
    return Page(items, encode_cursor(items[-1].created_at, items[-1].id))
