"""Human-readable text values shared by features."""

from __future__ import annotations

from dataclasses import dataclass

from chatsys.domain.shared.errors import InvalidInput

TITLE_MAX = 200


@dataclass(frozen=True, slots=True)
class Title:
    """A human-readable title: trimmed, non-empty, at most ``TITLE_MAX`` characters."""

    value: str

    def __post_init__(self) -> None:
        cleaned = " ".join(self.value.split())
        if not cleaned:
            raise InvalidInput("title must not be blank")
        if len(cleaned) > TITLE_MAX:
            raise InvalidInput(f"title is {len(cleaned)} characters long; the limit is {TITLE_MAX}")
        object.__setattr__(self, "value", cleaned)
