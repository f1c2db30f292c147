"""The rule for a date-time a client sends (``?since=``): RFC 3339 with its offset,
and a time that exists in UTC.

Pydantic alone also takes a number (a Unix time: ``?until=0.5``), a bare date and a
time without an offset, none of which the document's ``format: date-time`` allows; and
``9999-12-31T23:59:59-01:00`` parses, then overflows when the query converts it to UTC
(a 500). Here the first are refused by the shape, the second by the range, with 422.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from annotated_types import GroupedMetadata
from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

from chatsys.api.text import stated

__all__ = ["INSTANT", "RFC3339"]

RFC3339 = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_SHAPE = re.compile(RFC3339)


def _shape(value: Any) -> Any:
    if isinstance(value, str) and not _SHAPE.match(value):
        raise PydanticCustomError(
            "datetime_format",
            "must be an RFC 3339 date-time with its offset, e.g. 2026-01-31T09:30:00Z",
        )
    return value


def _in_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError("datetime_range", "is out of range once in UTC") from None


@dataclass(frozen=True, slots=True)
class _Instant(GroupedMetadata):
    def __iter__(self) -> Iterator[object]:
        yield BeforeValidator(_shape)
        yield AfterValidator(_in_utc)
        yield stated(pattern=RFC3339)


INSTANT = _Instant()
"""For a parameter: ``Annotated[datetime | None, Query(...), INSTANT]``."""
