"""The fake of ``IdempotencyRecords``, following ``chatsys.infra.db.idempotency_repository``:
one record per (owner, operation, key); a claim takes the key or returns the live record
(an expired one is taken over); units of work run one at a time, so a concurrent claim
sees the other's record only once it is committed, as under Postgres' primary key."""

from __future__ import annotations

import copy
from datetime import datetime

from chatsys.domain.shared.idempotency import KeyRecord
from chatsys.domain.shared.json import JsonDict
from tests.unit.fakes.session import Session


class FakeIdempotencyRecords:
    def __init__(self, session: Session) -> None:
        self._s = session

    async def claim(
        self,
        owner: str,
        operation: str,
        key: str,
        request_hash: str,
        *,
        at: datetime,
        expired_before: datetime,
    ) -> KeyRecord | None:
        self._s.check("idempotency.claim")
        rows = self._s.tables.idempotency
        earlier = rows.get((owner, operation, key))
        if earlier is not None and earlier.created_at > expired_before:
            return copy.deepcopy(earlier)
        rows[(owner, operation, key)] = KeyRecord(request_hash, None, at)
        return None

    async def record(self, owner: str, operation: str, key: str, answer: JsonDict) -> None:
        rows = self._s.tables.idempotency
        claimed = rows[(owner, operation, key)]
        rows[(owner, operation, key)] = KeyRecord(
            claimed.request_hash, copy.deepcopy(answer), claimed.created_at
        )
