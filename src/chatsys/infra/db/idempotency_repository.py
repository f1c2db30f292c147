"""The SQL adapter of ``IdempotencyRecords``: one row per (owner, operation, key)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chatsys.domain.shared.idempotency import KeyRecord
from chatsys.domain.shared.json import JsonDict
from chatsys.infra.db.models import IdempotencyKeyRow as Row


class SqlIdempotencyRecords:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

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
        # One statement: the primary key makes a concurrent claim of the same key wait
        # for the other transaction; an expired record is taken over in place.
        values = insert(Row).values(
            owner=owner, operation=operation, key=key, request_hash=request_hash,
            answer=None, created_at=at,
        )  # fmt: skip
        claim = values.on_conflict_do_update(
            index_elements=[Row.owner, Row.operation, Row.key],
            set_={"request_hash": request_hash, "answer": None, "created_at": at},
            where=Row.created_at <= expired_before,
        ).returning(Row.key)
        if (await self._session.execute(claim)).first() is not None:
            return None
        # Read committed: this statement sees the record of the transaction waited for.
        earlier = (
            await self._session.execute(
                select(Row.request_hash, Row.answer, Row.created_at).where(
                    Row.owner == owner, Row.operation == operation, Row.key == key
                )
            )
        ).one()
        return KeyRecord(earlier.request_hash, earlier.answer, earlier.created_at)

    async def record(self, owner: str, operation: str, key: str, answer: JsonDict) -> None:
        await self._session.execute(
            update(Row)
            .where(Row.owner == owner, Row.operation == operation, Row.key == key)
            .values(answer=answer)
        )
