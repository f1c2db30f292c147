"""``Idempotency-Key``: a retried request that created something gets the first answer.

Rules, for every use case that takes an ``IdempotentRequest`` (``once``):

- a key is 1 to 255 printable ASCII characters; it belongs to its owner (the caller's
  subject) and to one operation (``conversation.create``, ``task.cancel``, ...): another
  owner's key, or the same key on another operation, is another key;
- the use case claims the key in the transaction that creates the thing and records
  its answer in that same transaction, so neither can exist without the other; a
  request that fails records nothing, and its retry runs afresh;
- the same key again with the same request (the same path ids and body, see
  ``claim_key``): the use case stops and the first answer is given again, as it was
  then (``Replayed``); with another request: a conflict;
- two requests with one key at once: the second waits for the first's transaction,
  then replays its answer (or, if the first failed, runs itself);
- a record lasts ``KEY_TTL``; after that the key is free again;
- a record keeps no secret: the answer to record (``IdempotentRequest.answer``) is
  rendered without one, and a use case whose answer shows a secret once refuses the
  replay instead (a conflict naming what was created).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from chatsys.domain.shared.errors import Conflict, InvalidInput
from chatsys.domain.shared.json import JsonDict
from chatsys.domain.shared.uow import UnitOfWork

KEY_MAX = 255
KEY_TTL = timedelta(hours=24)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """What the client sent as ``Idempotency-Key``: 1 to 255 printable ASCII characters."""

    value: str

    def __post_init__(self) -> None:
        if not 1 <= len(self.value) <= KEY_MAX or not all(" " <= c <= "~" for c in self.value):
            raise InvalidInput(f"Idempotency-Key must be 1 to {KEY_MAX} printable ASCII characters")


def fingerprint(request: Mapping[str, Any]) -> str:
    """A hash of a request's meaning (keys sorted), to tell a retry from another request."""
    raw = json.dumps(request, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What a key was first used for: its request's fingerprint and that request's answer
    (None only while the request's transaction is open, which no other one sees)."""

    request_hash: str
    answer: JsonDict | None
    created_at: datetime


class IdempotencyRecords(Protocol):
    """The keys owners used, one record per (owner, operation, key)."""

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
        """Take the key in this transaction (replacing a record made at or before
        ``expired_before``): None when it is taken now, else the live earlier record. A
        claim by a transaction still open elsewhere is waited for: its record once it
        commits; the key, if it rolls back."""
        ...

    async def record(self, owner: str, operation: str, key: str, answer: JsonDict) -> None:
        """The answer of the request that claimed the key in this transaction."""
        ...


class IdempotencyUnitOfWork(UnitOfWork, Protocol):
    @property
    def idempotency(self) -> IdempotencyRecords: ...


class Replayed(Exception):  # not an error: the outcome of a retry
    """The request was made before with this key: ``answer`` is what it answered then.

    Raised out of the use case, whose transaction is left without a commit (nothing
    new is written); the caller answers ``answer`` again."""

    def __init__(self, answer: JsonDict) -> None:
        super().__init__("replayed")
        self.answer = answer


@dataclass(frozen=True, slots=True)
class IdempotentRequest(Generic[T]):
    """A request made under an ``Idempotency-Key`` by ``owner``. ``answer`` renders what
    the request answers, from what the use case made (no secret in it)."""

    owner: str
    key: IdempotencyKey
    answer: Callable[[T], JsonDict]


@dataclass(frozen=True, slots=True)
class Claim(Generic[T]):
    """A key claimed in one unit of work (or no key at all: then ``record`` does nothing)."""

    uow: IdempotencyUnitOfWork
    once: IdempotentRequest[T] | None
    operation: str

    async def record(self, made: T) -> None:
        """Record the answer; call it in the transaction, before the commit."""
        if self.once is not None:
            answer = self.once.answer(made)
            await self.uow.idempotency.record(
                self.once.owner, self.operation, self.once.key.value, answer
            )


async def claim_key(
    uow: IdempotencyUnitOfWork,
    once: IdempotentRequest[T] | None,
    operation: str,
    request: Mapping[str, Any],
    *,
    at: datetime,
) -> Claim[T]:
    """Claim ``once``'s key for ``operation`` at the start of the use case's transaction.

    ``request`` is what makes two requests the same one (the path ids and the body, as
    the use case was given them). Raises ``Replayed`` with the first answer when the key
    was used for the same request, ``Conflict`` when it was used for another one."""
    if once is None:
        return Claim(uow, None, operation)
    request_hash = fingerprint(request)
    earlier = await uow.idempotency.claim(
        once.owner, operation, once.key.value, request_hash,
        at=at, expired_before=at - KEY_TTL,
    )  # fmt: skip
    if earlier is None:
        return Claim(uow, once, operation)
    if earlier.request_hash != request_hash:
        raise Conflict("this Idempotency-Key was used with a different request")
    if earlier.answer is None:  # not expected: a claim is seen only once committed
        raise Conflict("a request with this Idempotency-Key is still in progress")
    raise Replayed(earlier.answer)
