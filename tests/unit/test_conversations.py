from __future__ import annotations

import uuid

import pytest

from chatsys.domain.conversations.use_cases import (
    GetConversation,
    ListConversations,
    StartConversation,
)
from chatsys.domain.shared.errors import InvalidInput, NotFound
from chatsys.domain.shared.pagination import decode_cursor, encode_cursor
from tests.unit.fakes import FakeClock, FakeDatabase


async def test_start_conversation_commits_a_trimmed_title() -> None:
    db = FakeDatabase()
    made = await StartConversation(db.uow, FakeClock()).execute(
        owner="ann", title="  Payment   service ", metadata={"team": "billing"}
    )
    assert made.title == "Payment service"
    assert db.committed.conversations[made.id].metadata == {"team": "billing"}
    assert [e.action for e in db.committed.audit] == ["conversation.create"]
    assert db.commits == 1


async def test_default_title_when_none_given() -> None:
    made = await StartConversation(FakeDatabase().uow, FakeClock()).execute(
        owner="ann", title=None, metadata=None
    )
    assert made.title == "New conversation"


@pytest.mark.parametrize("title", ["", "   ", "x" * 201])
async def test_bad_titles_are_refused_and_nothing_is_saved(title: str) -> None:
    db = FakeDatabase()
    with pytest.raises(InvalidInput):
        await StartConversation(db.uow, FakeClock()).execute(owner="ann", title=title, metadata={})
    assert db.committed.conversations == {}


async def test_too_much_metadata_is_refused() -> None:
    with pytest.raises(InvalidInput, match="51 keys"):
        await StartConversation(FakeDatabase().uow, FakeClock()).execute(
            owner="ann", title="t", metadata={str(i): i for i in range(51)}
        )


async def test_another_owners_conversation_is_not_found() -> None:
    db = FakeDatabase()
    made = await StartConversation(db.uow, FakeClock()).execute(owner="ann", title="a", metadata={})
    assert (await GetConversation(db.uow).execute(made.id, owner="ann")).id == made.id
    with pytest.raises(NotFound):
        await GetConversation(db.uow).execute(made.id, owner="bob")


async def test_pages_walk_every_conversation_once_newest_first() -> None:
    db = FakeDatabase()
    start = StartConversation(db.uow, FakeClock(tick=1))
    made = [await start.execute(owner="ann", title=f"c{i}", metadata={}) for i in range(7)]
    await start.execute(owner="bob", title="not ann's", metadata={})

    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await ListConversations(db.uow).execute(owner="ann", limit=3, cursor=cursor)
        seen.extend(c.title for c in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [c.title for c in reversed(made)]


def test_cursor_round_trip_and_garbage() -> None:
    from datetime import UTC, datetime

    stamp, ident = datetime(2026, 5, 1, 12, 0, tzinfo=UTC), uuid.uuid4()
    assert decode_cursor(encode_cursor(stamp, ident)) == (stamp, ident)
    with pytest.raises(InvalidInput):
        decode_cursor("definitely-not-a-cursor")
