"""API keys: a created key authenticates as its subject and role until it is revoked."""

from __future__ import annotations

import pytest

from chatsys.domain.access.model import Role
from chatsys.domain.access.use_cases import Authenticate, CreateApiKey, RevokeApiKey
from chatsys.domain.shared.errors import InvalidInput
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
