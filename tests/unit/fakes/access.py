"""Fakes of the access ports: ``AuditLog``, ``ApiKeyRepository``, ``RateLimiter``."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

from chatsys.domain.access.model import ApiKey, AuditEntry
from chatsys.domain.access.ports import RateDecision
from chatsys.domain.shared.clock import Clock
from chatsys.domain.tasks.model import Priority
from tests.unit.fakes.session import Session

TOUCH_EVERY = timedelta(minutes=1)


class FakeAuditLog:
    def __init__(self, session: Session) -> None:
        self._s = session

    async def add(self, entry: AuditEntry) -> None:
        self._s.check("audit.add")
        self._s.tables.audit.append(replace(entry, timestamp=entry.timestamp or self._s.now()))

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
        rows = [
            e
            for e in self._s.tables.audit
            if actor in (None, e.actor)
            and action in (None, e.action)
            and task_id in (None, e.task_id)
            and (since is None or e.created_at >= since)
            and (until is None or e.created_at < until)
            and (before is None or (e.created_at, e.id) < before)
        ]
        rows.sort(key=lambda e: (e.created_at, e.id), reverse=True)
        return rows[:limit]


class FakeApiKeyRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    @property
    def _rows(self) -> dict[UUID, ApiKey]:
        return self._s.tables.api_keys

    async def add(self, key: ApiKey) -> None:
        self._rows[key.id] = copy.deepcopy(key)

    async def get(self, key_id: UUID) -> ApiKey | None:
        found = self._rows.get(key_id)
        return copy.deepcopy(found) if found is not None else None

    async def by_prefix(self, prefix: str) -> ApiKey | None:
        found = next((k for k in self._rows.values() if k.prefix == prefix), None)
        return copy.deepcopy(found) if found is not None else None

    async def page(self, *, limit: int, before: tuple[datetime, UUID] | None) -> Sequence[ApiKey]:
        rows = sorted(self._rows.values(), key=lambda k: (k.created_at, k.id), reverse=True)
        if before is not None:
            rows = [k for k in rows if (k.created_at, k.id) < before]
        return [copy.deepcopy(k) for k in rows[:limit]]

    async def revoke(self, key_id: UUID, at: datetime) -> None:
        found = self._rows.get(key_id)
        if found is not None and found.revoked_at is None:
            found.revoked_at = at

    async def set_default_priority(self, key_id: UUID, priority: Priority) -> None:
        found = self._rows.get(key_id)
        if found is not None:
            found.default_priority = priority

    async def touch(self, key_id: UUID, at: datetime) -> None:
        found = self._rows.get(key_id)
        if found is not None and (
            found.last_used_at is None or found.last_used_at <= at - TOUCH_EVERY
        ):
            found.last_used_at = at

    async def count_active(self) -> int:
        return sum(1 for k in self._rows.values() if k.active)


class FakeRateLimiter:
    """A sliding log per key: ``limit`` hits in any ``period`` seconds, on the test's clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.hits: dict[str, list[datetime]] = {}

    async def hit(self, key: str, *, limit: int, period: float) -> RateDecision:
        now = self._clock.now()
        window = timedelta(seconds=period)
        log = [t for t in self.hits.get(key, []) if t > now - window]
        if len(log) >= limit:
            retry = (log[0] + window - now).total_seconds()
            self.hits[key] = log
            return RateDecision(False, limit, 0, retry, retry)
        log.append(now)
        self.hits[key] = log
        reset = (log[0] + window - now).total_seconds()
        return RateDecision(True, limit, limit - len(log), reset, 0)
