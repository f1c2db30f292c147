"""``Idempotency-Key`` in the use cases (``chatsys.domain.shared.idempotency``), on the fakes:
a retry gets the first answer as it was and makes nothing; another request under the key
is a conflict; keys are per owner and last 24 h; a failed request records nothing; an
answer with a secret shown once is never recorded nor replayed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chatsys.domain.access.model import ApiKey, Role
from chatsys.domain.access.use_cases import CreateApiKey
from chatsys.domain.conversations.model import Conversation
from chatsys.domain.conversations.use_cases import StartConversation
from chatsys.domain.shared.errors import Conflict, InvalidInput
from chatsys.domain.shared.idempotency import (
    IdempotencyKey,
    IdempotentRequest,
    Replayed,
)
from chatsys.domain.tasks.model import EventType, Task, TaskStatus
from chatsys.domain.webhooks.endpoints import CreateWebhook
from chatsys.domain.webhooks.model import WebhookEndpoint
from tests.unit.fakes import BlockingLLM
from tests.unit.world import World, until

DAY = 24 * 3600


def conversation_json(c: Conversation) -> dict[str, Any]:
    return {"id": str(c.id), "title": c.title}


def task_json(t: Task) -> dict[str, Any]:
    return {"id": str(t.id), "status": t.status.value, "cancel_requested": t.cancel_requested}


def once(render: Any, key: str = "k-1", owner: str = "ann") -> IdempotentRequest[Any]:
    return IdempotentRequest(owner, IdempotencyKey(key), render)


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "new\nline", "clé", "\x7f"])
def test_a_key_is_1_to_255_printable_ascii_characters(key: str) -> None:
    with pytest.raises(InvalidInput, match="Idempotency-Key"):
        IdempotencyKey(key)


def test_a_key_of_255_printable_characters_including_spaces_is_one() -> None:
    assert IdempotencyKey(" ~" * 127 + "a").value.endswith("a")


async def test_a_retry_gets_the_first_answer_and_starts_nothing() -> None:
    w = World()
    start = StartConversation(w.db.uow, w.clock)

    made = await start.execute(owner="ann", title="Plans", metadata={},
                               once=once(conversation_json))  # fmt: skip
    with pytest.raises(Replayed) as replay:
        await start.execute(owner="ann", title="Plans", metadata={},
                            once=once(conversation_json))  # fmt: skip

    assert replay.value.answer == conversation_json(made)
    assert list(w.db.committed.conversations) == [made.id]
    assert [e.action for e in w.db.committed.audit] == ["conversation.create"]


async def test_another_request_under_the_key_is_a_conflict_and_starts_nothing() -> None:
    w = World()
    start = StartConversation(w.db.uow, w.clock)
    await start.execute(owner="ann", title="Plans", metadata={}, once=once(conversation_json))

    with pytest.raises(Conflict, match="different request"):
        await start.execute(owner="ann", title="Other", metadata={},
                            once=once(conversation_json))  # fmt: skip

    assert len(w.db.committed.conversations) == 1


async def test_keys_are_per_owner_and_per_operation() -> None:
    w = World()
    start = StartConversation(w.db.uow, w.clock)
    await start.execute(owner="ann", title="Plans", metadata={}, once=once(conversation_json))

    await start.execute(owner="bob", title="Other", metadata={},
                        once=once(conversation_json, owner="bob"))  # fmt: skip
    task_id = await w.submitted(owner="ann")
    cancelled = await w.cancel.execute(task_id, owner="ann", once=once(task_json))

    assert len(w.db.committed.conversations) == 2
    assert cancelled.status is TaskStatus.CANCELLED


async def test_a_key_is_free_again_after_24_hours() -> None:
    w = World()
    start = StartConversation(w.db.uow, w.clock)
    await start.execute(owner="ann", title="Plans", metadata={}, once=once(conversation_json))
    w.clock.advance(DAY - 1)
    with pytest.raises(Replayed):
        await start.execute(owner="ann", title="Plans", metadata={},
                            once=once(conversation_json))  # fmt: skip

    w.clock.advance(1)
    await start.execute(owner="ann", title="Other", metadata={}, once=once(conversation_json))

    assert len(w.db.committed.conversations) == 2


async def test_a_cancel_retried_later_gets_the_first_answer_as_it_was() -> None:
    w = World()
    task_id = await w.submitted(agents=["developer", "reviewer"])
    llm = BlockingLLM("reviewer_2")
    run = asyncio.create_task(w.runner("a", llm).execute(task_id))
    await until(lambda: llm.calls_for("reviewer_2") == 1)
    flagged = await w.cancel.execute(task_id, owner="ann", once=once(task_json))
    assert await asyncio.wait_for(run, 5) is TaskStatus.CANCELLED

    with pytest.raises(Replayed) as replay:
        await w.cancel.execute(task_id, owner="ann", once=once(task_json))

    assert replay.value.answer == task_json(flagged)
    assert replay.value.answer["status"] == "running"  # what the first call answered
    assert w.events(task_id).count(EventType.TASK_CANCELLED) == 1
    with pytest.raises(Conflict, match="already cancelled"):  # without the key
        await w.cancel.execute(task_id, owner="ann")


async def test_a_refused_request_records_nothing_so_its_retry_runs_afresh() -> None:
    w = World()
    task_id = await w.submitted()
    await w.cancel.execute(task_id, owner="ann")

    with pytest.raises(Conflict, match="already cancelled"):
        await w.cancel.execute(task_id, owner="ann", once=once(task_json))

    assert w.db.committed.idempotency == {}
    with pytest.raises(Conflict, match="already cancelled"):  # not a replay: it ran again
        await w.cancel.execute(task_id, owner="ann", once=once(task_json))


async def test_concurrent_requests_with_one_key_make_one_thing() -> None:
    w = World()
    start = StartConversation(w.db.uow, w.clock)

    outcomes = await asyncio.gather(
        *(
            start.execute(owner="ann", title="Race", metadata={}, once=once(conversation_json))
            for _ in range(5)
        ),
        return_exceptions=True,
    )

    made = [o for o in outcomes if isinstance(o, Conversation)]
    replays = [o for o in outcomes if isinstance(o, Replayed)]
    assert len(made) == 1
    assert len(replays) == 4
    assert all(r.answer == conversation_json(made[0]) for r in replays)
    assert len(w.db.committed.conversations) == 1


def endpoint_json(e: WebhookEndpoint) -> dict[str, Any]:
    return {"id": str(e.id), "url": e.url}


async def test_a_webhook_retry_is_a_conflict_naming_the_endpoint_and_no_secret_is_kept() -> None:
    w = World()
    create = CreateWebhook(w.db.uow, w.clock, w.url_guard)
    url = "https://hooks.example.com/in"
    made = await create.execute(owner="ann", actor="key:1", url=url, once=once(endpoint_json))

    with pytest.raises(Conflict, match="shown only once") as refused:
        await create.execute(owner="ann", actor="key:1", url=url, once=once(endpoint_json))

    assert str(made.id) in refused.value.detail
    assert made.secret not in refused.value.detail
    assert len(w.db.committed.endpoints) == 1
    [record] = w.db.committed.idempotency.values()
    assert made.secret not in repr(record)


def key_json(k: ApiKey) -> dict[str, Any]:
    return {"id": str(k.id), "prefix": k.prefix}


async def test_an_api_key_retry_is_a_conflict_naming_the_key_and_the_key_is_not_kept() -> None:
    w = World()
    create = CreateApiKey(w.db.uow, w.clock)
    made, full = await create.execute(name="ci", role=Role.MEMBER, subject=None, actor="cli",
                                      once=once(key_json, owner="root"))  # fmt: skip

    with pytest.raises(Conflict, match="shown only once") as refused:
        await create.execute(name="ci", role=Role.MEMBER, subject=None, actor="cli",
                             once=once(key_json, owner="root"))  # fmt: skip

    assert str(made.id) in refused.value.detail
    assert len(w.db.committed.api_keys) == 1
    [record] = w.db.committed.idempotency.values()
    assert full not in repr(record)
