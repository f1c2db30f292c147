"""API keys: a created key authenticates as its subject and role until it is revoked."""

from __future__ import annotations

from uuid import uuid4

import pytest

from chatsys.domain.access.model import Role
from chatsys.domain.access.use_cases import (
    Authenticate,
    CreateApiKey,
    RevokeApiKey,
    SetKeyPriority,
)
from chatsys.domain.shared.errors import Conflict, InvalidInput, NotFound
from chatsys.domain.tasks.model import Priority
from tests.unit.fakes import FakeClock, FakeDatabase


async def test_a_new_key_authenticates_as_its_subject_and_role() -> None:
    db = FakeDatabase()
    key, full = await CreateApiKey(db.uow, db.clock).execute(
        name="ci", role=Role.MEMBER, subject="team-a", actor="admin"
    )
    principal = await Authenticate(db.uow, db.clock, cache_seconds=30).execute(full)
    assert principal is not None
    assert (principal.subject, principal.role, principal.key_id) == ("team-a", Role.MEMBER, key.id)
    assert full not in repr(db.committed.api_keys)  # only a hash of the secret is stored
    assert [e.action for e in db.committed.audit] == ["api_key.create"]


async def test_a_wrong_or_malformed_key_is_refused() -> None:
    db = FakeDatabase()
    _, full = await CreateApiKey(db.uow, db.clock).execute(
        name="ci", role=Role.VIEWER, subject=None, actor="admin"
    )
    authenticate = Authenticate(db.uow, db.clock, cache_seconds=30)
    assert await authenticate.execute(full[:-1] + ("A" if full[-1] != "A" else "B")) is None
    assert await authenticate.execute("not-a-key") is None


async def test_a_revoked_key_stops_working() -> None:
    clock = FakeClock()
    db = FakeDatabase(clock)
    key, full = await CreateApiKey(db.uow, clock).execute(
        name="ci", role=Role.ADMIN, subject="ops", actor="admin"
    )
    authenticate = Authenticate(db.uow, clock, cache_seconds=30)
    principal = await authenticate.execute(full)
    assert principal is not None

    await RevokeApiKey(db.uow, clock).execute(key.id, actor="admin")

    assert not await authenticate.still_active(principal)  # a ticket carrying it is refused
    clock.advance(31)  # past the cache
    assert await authenticate.execute(full) is None


async def test_a_bad_name_stores_nothing() -> None:
    db = FakeDatabase()
    with pytest.raises(InvalidInput):
        await CreateApiKey(db.uow, db.clock).execute(
            name="  ", role=Role.MEMBER, subject=None, actor="admin"
        )
    assert db.committed.api_keys == {}
    assert db.committed.audit == []


async def test_a_keys_default_priority_goes_with_its_principal_and_can_be_changed() -> None:
    clock = FakeClock()
    db = FakeDatabase(clock)
    key, full = await CreateApiKey(db.uow, clock).execute(
        name="batch", role=Role.MEMBER, subject="etl", actor="admin",
        default_priority=Priority.LOW,
    )  # fmt: skip
    authenticate = Authenticate(db.uow, clock, cache_seconds=30)
    principal = await authenticate.execute(full)
    assert principal is not None
    assert principal.default_priority is Priority.LOW

    changed = await SetKeyPriority(db.uow).execute(
        key.id, default_priority=Priority.HIGH, actor="admin"
    )
    assert changed.default_priority is Priority.HIGH
    authenticate.forget(key.id)
    principal = await authenticate.execute(full)
    assert principal is not None
    assert principal.default_priority is Priority.HIGH
    [_, update] = db.committed.audit
    assert (update.action, update.details) == (
        "api_key.update",
        {"default_priority": "high", "was": "low"},
    )
    await SetKeyPriority(db.uow).execute(key.id, default_priority=Priority.HIGH, actor="admin")
    assert len(db.committed.audit) == 2  # no change, no entry


async def test_a_revoked_or_unknown_key_cannot_be_changed() -> None:
    db = FakeDatabase()
    key, _ = await CreateApiKey(db.uow, db.clock).execute(
        name="ci", role=Role.MEMBER, subject=None, actor="admin"
    )
    await RevokeApiKey(db.uow, db.clock).execute(key.id, actor="admin")
    with pytest.raises(Conflict, match="revoked"):
        await SetKeyPriority(db.uow).execute(key.id, default_priority=Priority.LOW, actor="a")
    with pytest.raises(NotFound):
        await SetKeyPriority(db.uow).execute(uuid4(), default_priority=Priority.LOW, actor="a")
    assert db.committed.api_keys[key.id].default_priority is Priority.NORMAL
