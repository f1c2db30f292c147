"""What every fake repository of one unit of work shares: its staged tables, the
database's clock, and the faults a test asked for."""

from __future__ import annotations

from datetime import datetime

from chatsys.domain.shared.clock import Clock
from chatsys.domain.tasks.model import TaskEvent
from tests.unit.fakes.tables import Tables


class Session:
    def __init__(self, tables: Tables, clock: Clock, faults: dict[str, Exception]) -> None:
        self.tables = tables
        self._clock = clock
        self._faults = faults
        self.appended: list[TaskEvent] = []  # published once the unit of work commits

    def now(self) -> datetime:
        """The database's ``now()``."""
        return self._clock.now()

    def check(self, operation: str) -> None:
        """Raise the fault a test planted for ``operation`` (once)."""
        fault = self._faults.pop(operation, None)
        if fault is not None:
            raise fault
