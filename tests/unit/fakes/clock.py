"""A clock the test moves by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

START = datetime(2026, 1, 1, tzinfo=UTC)


class FakeClock:
    """Stands still unless ``advance`` is called; with ``tick`` every reading moves it on by
    that many seconds (so that rows written one after the other get distinct stamps)."""

    def __init__(self, start: datetime = START, *, tick: float = 0.0) -> None:
        self.current = start
        self._tick = timedelta(seconds=tick)

    def now(self) -> datetime:
        self.current += self._tick
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
