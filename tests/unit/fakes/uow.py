"""The fake database and its unit of work.

A unit of work stages a deep copy of the committed tables; its repositories read and write
only that copy; ``commit`` makes the copy the committed state, ``rollback`` (or leaving
without a commit) throws it away. So a test sees, in ``db.committed``, exactly what a
use case committed, and nothing half-written.

Units of work run one at a time (a database-wide lock, held from ``__aenter__`` to
``__aexit__``): concurrent use cases (a runner and its heartbeat, a decision arriving
while the runner polls) interleave transaction by transaction, as Postgres' row locks
serialise them. Opening a unit of work inside another in the same asyncio task would
deadlock, so it fails instead. Each unit of work yields to the event loop once on entry,
as a real round trip would, so concurrent requests do interleave.
"""

from __future__ import annotations

import asyncio
import copy
from types import TracebackType
from typing import Self

from chatsys.domain.shared.clock import Clock
from chatsys.domain.tasks.model import TaskEvent
from tests.unit.fakes.access import FakeApiKeyRepository, FakeAuditLog
from tests.unit.fakes.approvals import FakeApprovalRepository
from tests.unit.fakes.clock import FakeClock
from tests.unit.fakes.conversations import FakeConversationRepository, FakeMessageRepository
from tests.unit.fakes.idempotency import FakeIdempotencyRecords
from tests.unit.fakes.session import Session
from tests.unit.fakes.tables import Tables
from tests.unit.fakes.tasks import FakeEventLog, FakeOutbox, FakeTaskRepository
from tests.unit.fakes.webhooks import FakeWebhookDeliveryRepository, FakeWebhookEndpointRepository


class FakeDatabase:
    """The committed state, shared by every unit of work opened with ``uow``."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.committed = Tables()
        self.commits = 0
        self.published: list[TaskEvent] = []  # events, in commit order (the live feed)
        self.faults: dict[str, Exception] = {}
        self._lock = asyncio.Lock()
        self._holder: asyncio.Task[object] | None = None

    def uow(self) -> FakeUnitOfWork:
        """The unit-of-work factory the use cases are given (``Factory[...]``)."""
        return FakeUnitOfWork(self)

    def fail(self, operation: str, error: Exception) -> None:
        """Make the next call of ``operation`` (e.g. ``"outbox.add"``) raise ``error``."""
        self.faults[operation] = error


class FakeUnitOfWork:
    def __init__(self, db: FakeDatabase) -> None:
        self._db = db
        self._session: Session | None = None

    async def __aenter__(self) -> Self:
        db = self._db
        current = asyncio.current_task()
        if current is not None and db._holder is current:
            raise AssertionError("a unit of work was opened inside another one")
        await db._lock.acquire()
        db._holder = current
        self._session = Session(copy.deepcopy(db.committed), db.clock, db.faults)
        try:
            await asyncio.sleep(0)  # a round trip: let concurrent use cases run
        except BaseException:  # cancelled on the way in: __aexit__ will not run
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._session = None  # whatever was not committed is gone
        self._db._holder = None
        self._db._lock.release()

    async def commit(self) -> None:
        session = self._open()
        self._db.committed = copy.deepcopy(session.tables)
        self._db.commits += 1
        self._db.published += session.appended
        session.appended = []

    async def rollback(self) -> None:
        session = self._open()
        session.tables = copy.deepcopy(self._db.committed)
        session.appended = []

    def _open(self) -> Session:
        if self._session is None:
            raise AssertionError("the unit of work is used outside its `async with` block")
        return self._session

    @property
    def tasks(self) -> FakeTaskRepository:
        return FakeTaskRepository(self._open())

    @property
    def events(self) -> FakeEventLog:
        return FakeEventLog(self._open())

    @property
    def outbox(self) -> FakeOutbox:
        return FakeOutbox(self._open())

    @property
    def conversations(self) -> FakeConversationRepository:
        return FakeConversationRepository(self._open())

    @property
    def messages(self) -> FakeMessageRepository:
        return FakeMessageRepository(self._open())

    @property
    def approvals(self) -> FakeApprovalRepository:
        return FakeApprovalRepository(self._open())

    @property
    def webhooks(self) -> FakeWebhookEndpointRepository:
        return FakeWebhookEndpointRepository(self._open())

    @property
    def deliveries(self) -> FakeWebhookDeliveryRepository:
        return FakeWebhookDeliveryRepository(self._open())

    @property
    def audit(self) -> FakeAuditLog:
        return FakeAuditLog(self._open())

    @property
    def api_keys(self) -> FakeApiKeyRepository:
        return FakeApiKeyRepository(self._open())

    @property
    def idempotency(self) -> FakeIdempotencyRecords:
        return FakeIdempotencyRecords(self._open())
