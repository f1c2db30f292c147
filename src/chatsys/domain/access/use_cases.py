"""Use cases of access control: keys, authentication, the audit trail (see identity)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from chatsys.domain.access.model import (
    NAME_MAX,
    SUBJECT_SHAPE,
    ApiKey,
    AuditEntry,
    Principal,
    Role,
    hash_secret,
    new_key,
    parse_key,
    verify,
)
from chatsys.domain.access.ports import AccessUnitOfWork
from chatsys.domain.shared.clock import Clock
from chatsys.domain.shared.errors import Conflict, InvalidInput, NotFound
from chatsys.domain.shared.idempotency import IdempotentRequest, Replayed, claim_key
from chatsys.domain.shared.pagination import Page, cut_page, decode_cursor
from chatsys.domain.shared.uow import Factory
from chatsys.domain.tasks.model import Priority


class CreateApiKey:
    """A new key: its secret is shown in this answer only (the database keeps a hash).

    Under an ``Idempotency-Key`` (``once``) a retry creates nothing; as the key cannot
    be shown again, the retry is a conflict naming the key made (revoke it if it was
    lost, and create another)."""

    def __init__(self, uow: Factory[AccessUnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def execute(
        self,
        *,
        name: str,
        role: Role,
        subject: str | None,
        actor: str,
        default_priority: Priority = Priority.NORMAL,
        once: IdempotentRequest[ApiKey] | None = None,
    ) -> tuple[ApiKey, str]:
        name = name.strip()
        if not name or len(name) > NAME_MAX:
            raise InvalidInput(f"name must be 1 to {NAME_MAX} characters")
        request = {"name": name, "role": role.value, "subject": subject}
        if default_priority is not Priority.NORMAL:  # requests recorded before it still match
            request["default_priority"] = default_priority.value
        key_id = uuid4()
        subject = subject or str(key_id)
        if not SUBJECT_SHAPE.match(subject):
            raise InvalidInput("subject: 1 to 200 of letters, digits and . _ @ : -")
        full, prefix, secret_hash = new_key()
        key = ApiKey(key_id, name, role, subject, prefix, secret_hash, self._clock.now(),
                     created_by=actor, default_priority=default_priority)  # fmt: skip
        async with self._uow() as uow:
            try:
                claim = await claim_key(uow, once, "api_key.create", request, at=key.created_at)
            except Replayed as replay:
                raise Conflict(
                    f"this Idempotency-Key already created API key {replay.answer.get('id')}; "
                    "the key is shown only once: revoke that one if it was lost, and create "
                    "another"
                ) from None
            await uow.api_keys.add(key)
            await uow.audit.add(
                AuditEntry("api_key.create", actor, target=f"api_key:{key_id}",
                           details={"name": name, "role": role.value, "subject": subject,
                                    "default_priority": default_priority.value})
            )  # fmt: skip
            await claim.record(key)
            await uow.commit()
        return key, full


class ListApiKeys:
    def __init__(self, uow: Factory[AccessUnitOfWork]) -> None:
        self._uow = uow

    async def execute(self, *, limit: int, cursor: str | None) -> Page[ApiKey]:
        before = decode_cursor(cursor) if cursor else None
        async with self._uow() as uow:
            rows = await uow.api_keys.page(limit=limit + 1, before=before)
        return cut_page(rows, limit)


class RevokeApiKey:
    def __init__(self, uow: Factory[AccessUnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def execute(self, key_id: UUID, *, actor: str) -> ApiKey:
        async with self._uow() as uow:
            key = await uow.api_keys.get(key_id)
            if key is None:
                raise NotFound(f"API key {key_id} does not exist")
            if key.revoked_at is None:
                key.revoked_at = self._clock.now()
                await uow.api_keys.revoke(key_id, key.revoked_at)
                await uow.audit.add(
                    AuditEntry("api_key.revoke", actor, target=f"api_key:{key_id}",
                               details={"name": key.name})
                )  # fmt: skip
                await uow.commit()
        return key


class SetKeyPriority:
    """Change a key's ``default_priority``: the priority of the tasks it submits from now
    on without one (tasks already submitted keep theirs). A revoked key cannot be changed.
    A process that has the key's principal cached (``Authenticate``) sees the change
    within its ``cache_seconds`` (at once where the caller also ``forget``s the key)."""

    def __init__(self, uow: Factory[AccessUnitOfWork]) -> None:
        self._uow = uow

    async def execute(self, key_id: UUID, *, default_priority: Priority, actor: str) -> ApiKey:
        async with self._uow() as uow:
            key = await uow.api_keys.get(key_id)
            if key is None:
                raise NotFound(f"API key {key_id} does not exist")
            if not key.active:
                raise Conflict(f"API key {key_id} is revoked; it cannot be changed")
            if key.default_priority is not default_priority:
                before, key.default_priority = key.default_priority, default_priority
                await uow.api_keys.set_default_priority(key_id, default_priority)
                await uow.audit.add(
                    AuditEntry("api_key.update", actor, target=f"api_key:{key_id}",
                               details={"default_priority": default_priority.value,
                                        "was": before.value})
                )  # fmt: skip
                await uow.commit()
        return key


class Authenticate:
    """Turn a presented key into a principal, or None (unknown, malformed, revoked).

    Verified keys are remembered for ``cache_seconds`` so a request does not cost a
    database read; a revocation made through this process takes effect at once,
    one made elsewhere within ``cache_seconds``.
    """

    def __init__(
        self, uow: Factory[AccessUnitOfWork], clock: Clock, *, cache_seconds: float
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._ttl = cache_seconds
        self._cache: dict[str, tuple[float, Principal]] = {}

    async def execute(self, raw: str) -> Principal | None:
        parsed = parse_key(raw)
        if parsed is None:
            verify(None, "x")  # same work as a real miss
            return None
        prefix, secret = parsed
        now = self._clock.now().timestamp()
        digest = hash_secret(raw)
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._uow() as uow:
            key = await uow.api_keys.by_prefix(prefix)
            if not verify(key, secret):
                return None
            assert key is not None
            await uow.api_keys.touch(key.id, self._clock.now())
            await uow.commit()
        if len(self._cache) > 10_000:
            self._cache.clear()
        principal = key.principal()
        self._cache[digest] = (now + self._ttl, principal)
        return principal

    async def still_active(self, principal: Principal) -> bool:
        """For a principal carried by a ticket: is its key still valid?"""
        if principal.key_id is None:
            return True
        async with self._uow() as uow:
            key = await uow.api_keys.get(principal.key_id)
        return key is not None and key.active

    def forget(self, key_id: UUID) -> None:
        for digest, (_, principal) in list(self._cache.items()):
            if principal.key_id == key_id:
                del self._cache[digest]


class ListAuditLogs:
    def __init__(self, uow: Factory[AccessUnitOfWork]) -> None:
        self._uow = uow

    async def execute(
        self,
        *,
        limit: int,
        cursor: str | None,
        actor: str | None = None,
        action: str | None = None,
        task_id: UUID | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[AuditEntry]:
        before = decode_cursor(cursor) if cursor else None
        async with self._uow() as uow:
            rows = await uow.audit.page(
                limit=limit + 1, before=before, actor=actor, action=action,
                task_id=task_id, since=since, until=until,
            )  # fmt: skip
        return cut_page(rows, limit)
