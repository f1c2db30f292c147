"""Ports of access control: API keys, the audit trail, rate limits, stream tickets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from chatsys.domain.access.model import ApiKey, AuditEntry, Principal
from chatsys.domain.shared.idempotency import IdempotencyUnitOfWork
from chatsys.domain.tasks.model import Priority


class ApiKeyRepository(Protocol):
    async def add(self, key: ApiKey) -> None: ...

    async def get(self, key_id: UUID) -> ApiKey | None: ...

    async def by_prefix(self, prefix: str) -> ApiKey | None: ...

    async def page(self, *, limit: int, before: tuple[datetime, UUID] | None) -> Sequence[ApiKey]:
        """Newest first."""
        ...

    async def revoke(self, key_id: UUID, at: datetime) -> None: ...

    async def set_default_priority(self, key_id: UUID, priority: Priority) -> None: ...

    async def touch(self, key_id: UUID, at: datetime) -> None:
        """Record a use (at most once a minute is written)."""
        ...

    async def count_active(self) -> int: ...


class AuditLog(Protocol):
    """Append-only; written in the transaction of the change it records."""

    async def add(self, entry: AuditEntry) -> None: ...

    async def page(
        self,
        *,
        limit: int,
        before: tuple[datetime, UUID] | None,
        actor: str | None,
        action: str | None,
        task_id: UUID | None,
        since: datetime | None,
        until: datetime | None,
    ) -> Sequence[AuditEntry]:
        """Newest first."""
        ...


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int  # requests per period
    remaining: int
    reset_after: float  # seconds until the full allowance is back
    retry_after: float  # seconds to wait when refused (0 when allowed)


class RateLimiter(Protocol):
    """A shared (cross-process) limit of ``limit`` hits per ``period`` seconds per key."""

    async def hit(self, key: str, *, limit: int, period: float) -> RateDecision: ...


class TicketStore(Protocol):
    """Short-lived, single-use stand-ins for a key, fit to go in a URL."""

    ttl: float  # the longest a ticket waits for its one use

    async def issue(self, principal: Principal) -> str: ...

    async def redeem(self, ticket: str) -> Principal | None:
        """The principal the ticket stands for, once: the first call spends it (even
        when that use is then refused), so every later call, and any after ``ttl``,
        gets ``None``. Atomic: two concurrent uses cannot both get the principal."""
        ...


class AccessUnitOfWork(IdempotencyUnitOfWork, Protocol):
    @property
    def api_keys(self) -> ApiKeyRepository: ...

    @property
    def audit(self) -> AuditLog: ...
