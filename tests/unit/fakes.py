"""Hand-written in-memory fakes of the domain's ports (unit tests only)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self
from uuid import UUID

from chatsys.domain.access.model import AuditEntry
from chatsys.domain.access.ports import ApiKeyRepository
from chatsys.domain.approvals.ports import ApprovalRepository
from chatsys.domain.conversations.model import Conversation
from chatsys.domain.conversations.ports import MessageRepository
from chatsys.domain.tasks.ports import EventLog, Outbox, TaskRepository
from chatsys.domain.webhooks.ports import WebhookDeliveryRepository, WebhookEndpointRepository


class FakeClock:
    def __init__(self) -> None:
        self.current = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        self.current += timedelta(seconds=1)
        return self.current


class FakeConversationRepository:
    def __init__(self, store: dict[UUID, Conversation]) -> None:
        self._store = store

    async def add(self, conversation: Conversation) -> None:
        self._store[conversation.id] = conversation

    async def get(self, conversation_id: UUID, *, owner: str | None) -> Conversation | None:
        found = self._store.get(conversation_id)
        return found if found is not None and owner in (None, found.owner) else None

    async def list_for_owner(
        self, owner: str | None, *, limit: int, before: tuple[datetime, UUID] | None
    ) -> Sequence[Conversation]:
        rows = sorted(
            (c for c in self._store.values() if owner in (None, c.owner)),
            key=lambda c: (c.created_at, c.id),
            reverse=True,
        )
        if before is not None:
            rows = [c for c in rows if (c.created_at, c.id) < before]
        return rows[:limit]


class FakeAuditLog:
    def __init__(self, entries: list[AuditEntry]) -> None:
        self._entries = entries

    async def add(self, entry: AuditEntry) -> None:
        self._entries.append(entry)

    async def page(self, **_: object) -> Sequence[AuditEntry]:
        raise AssertionError("unexpected read of the audit log")


class FakeUnitOfWork:
    """Commits copy the pending state into ``committed``; leaving without commit drops it."""

    def __init__(self) -> None:
        self.committed: dict[UUID, Conversation] = {}
        self.audited: list[AuditEntry] = []
        self.commits = 0

    def __call__(self) -> Self:
        return self

    async def __aenter__(self) -> Self:
        self._pending = dict(self.committed)
        self._pending_audit: list[AuditEntry] = []
        self.conversations = FakeConversationRepository(self._pending)
        self.audit = FakeAuditLog(self._pending_audit)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pending = {}

    async def commit(self) -> None:
        self.committed = dict(self._pending)
        self.audited += self._pending_audit
        self.commits += 1

    # The conversation use cases must not touch anything else: reaching for it fails.
    @property
    def messages(self) -> MessageRepository:
        raise AssertionError("unexpected use of messages")

    @property
    def tasks(self) -> TaskRepository:
        raise AssertionError("unexpected use of tasks")

    @property
    def events(self) -> EventLog:
        raise AssertionError("unexpected use of events")

    @property
    def outbox(self) -> Outbox:
        raise AssertionError("unexpected use of the outbox")

    @property
    def webhooks(self) -> WebhookEndpointRepository:
        raise AssertionError("unexpected use of webhooks")

    @property
    def deliveries(self) -> WebhookDeliveryRepository:
        raise AssertionError("unexpected use of deliveries")

    @property
    def api_keys(self) -> ApiKeyRepository:
        raise AssertionError("unexpected use of API keys")

    @property
    def approvals(self) -> ApprovalRepository:
        raise AssertionError("unexpected use of approvals")

    async def rollback(self) -> None:
        self._pending = dict(self.committed)
