"""Submitting a task: one transaction, idempotency keys, quotas, the outbox."""

from __future__ import annotations

import asyncio

import pytest

from chatsys.domain.access.model import Role
from chatsys.domain.conversations.use_cases import StartConversation
from chatsys.domain.shared.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TooManyRequests,
)
from chatsys.domain.tasks.model import EventType, Priority, TaskStatus
from chatsys.domain.tasks.submission import TaskQuota, TaskRequest
from tests.unit.world import World

REQUEST = TaskRequest("Write a haiku about queues", metadata={"ticket": "T-1"})


async def test_the_task_its_created_event_and_its_outbox_entry_are_committed_at_once() -> None:
    w = World()
    task, created = await w.submit.execute(role=Role.MEMBER, owner="ann", request=REQUEST)

    assert created
    assert w.db.commits == 1
    stored = w.task(task.id)
    assert (stored.status, stored.owner, stored.metadata) == (
        TaskStatus.QUEUED,
        "ann",
        {"ticket": "T-1"},
    )
    assert w.events(task.id) == [EventType.TASK_CREATED]
    [entry] = w.db.committed.outbox_for(task.id)
    assert w.jobs.runs == [(task.id, entry.id)]  # enqueued after the commit
    assert [(a.action, a.task_id) for a in w.db.committed.audit] == [("task.create", task.id)]


async def test_a_failure_midway_leaves_nothing_half_written() -> None:
    w = World()
    conversation = await StartConversation(w.db.uow, w.clock).execute(
        owner="ann", title="Poems", metadata=None
    )
    w.db.fail("outbox.add", RuntimeError("the database went away"))

    with pytest.raises(RuntimeError, match="went away"):
        await w.submit.execute(
            role=Role.MEMBER,
            owner="ann",
            request=TaskRequest("Write a haiku", conversation_id=conversation.id),
        )

    assert w.db.committed.tasks == {}
    assert w.db.committed.events == {}
    assert w.db.committed.messages == []  # the user's message went with the rest
    assert w.jobs.runs == []


async def test_the_input_becomes_the_users_message_in_its_conversation() -> None:
    w = World()
    conversation = await StartConversation(w.db.uow, w.clock).execute(
        owner="ann", title="Poems", metadata=None
    )
    task, _ = await w.submit.execute(
        role=Role.MEMBER,
        owner="ann",
        request=TaskRequest("Write a haiku", conversation_id=conversation.id),
    )
    [message] = w.db.committed.messages
    assert (message.role, message.content, message.task_id) == ("user", "Write a haiku", task.id)

    with pytest.raises(NotFound):  # someone else's conversation
        await w.submit.execute(
            role=Role.MEMBER,
            owner="bob",
            request=TaskRequest("Hi", conversation_id=conversation.id),
        )
    assert len(w.db.committed.tasks) == 1


async def test_the_same_key_and_body_return_the_same_task_without_a_second_row() -> None:
    w = World()
    first, created = await w.submit.execute(
        role=Role.MEMBER, owner="ann", request=REQUEST, idempotency_key="k-1"
    )
    replay = TaskRequest("Write a haiku about queues", metadata={"ticket": "T-1"})
    again, created_again = await w.submit.execute(
        role=Role.MEMBER, owner="ann", request=replay, idempotency_key="k-1"
    )

    assert (created, created_again) == (True, False)
    assert again.id == first.id
    assert list(w.db.committed.tasks) == [first.id]
    assert len(w.db.committed.outbox_for(first.id)) == 1
    assert len(w.jobs.runs) == 1
    assert w.events(first.id) == [EventType.TASK_CREATED]


async def test_the_same_key_with_another_body_is_a_conflict() -> None:
    w = World()
    first, _ = await w.submit.execute(
        role=Role.MEMBER, owner="ann", request=REQUEST, idempotency_key="k-1"
    )
    with pytest.raises(Conflict, match="different request body"):
        await w.submit.execute(
            role=Role.MEMBER,
            owner="ann",
            request=TaskRequest("Write a limerick"),
            idempotency_key="k-1",
        )
    assert list(w.db.committed.tasks) == [first.id]
    assert len(w.db.committed.outbox) == 1


async def test_a_key_belongs_to_its_owner() -> None:
    w = World()
    ann, _ = await w.submit.execute(
        role=Role.MEMBER, owner="ann", request=REQUEST, idempotency_key="k-1"
    )
    bob, created = await w.submit.execute(
        role=Role.MEMBER, owner="bob", request=REQUEST, idempotency_key="k-1"
    )
    assert created
    assert bob.id != ann.id


async def test_concurrent_submissions_with_one_key_make_one_task() -> None:
    w = World()
    results = await asyncio.gather(
        *(
            w.submit.execute(role=Role.MEMBER, owner="ann", request=REQUEST, idempotency_key="k-1")
            for _ in range(3)
        )
    )
    assert len({task.id for task, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, True]
    assert len(w.db.committed.tasks) == 1
    assert len(w.db.committed.outbox) == 1


async def test_the_active_task_cap_refuses_until_a_task_finishes() -> None:
    w = World()
    quota = TaskQuota(max_active=2)
    first = await w.submit_with_quota(quota)
    await w.submit_with_quota(quota)
    await w.submit_with_quota(quota, owner="bob")  # the cap is per owner

    with pytest.raises(TooManyRequests, match="limit is 2") as refused:
        await w.submit_with_quota(quota)
    assert refused.value.retry_after == 5
    assert len([t for t in w.db.committed.tasks.values() if t.task.owner == "ann"]) == 2
    assert len(w.db.committed.outbox) == 3

    await w.cancel.execute(first.id, owner="ann")
    await w.submit_with_quota(quota)  # a finished task no longer counts


async def test_the_token_quota_refuses_for_a_minute_after_the_tokens_were_used() -> None:
    w = World()
    used = await w.submitted(agents=["assistant"])
    assert await w.runner("w1").execute(used) is TaskStatus.SUCCEEDED
    spent = w.task(used).usage.total_tokens
    assert spent > 0
    quota = TaskQuota(tokens_per_minute=spent)

    with pytest.raises(TooManyRequests, match=f"used {spent} tokens") as refused:
        await w.submit_with_quota(quota)
    assert refused.value.retry_after == 60
    assert list(w.db.committed.tasks) == [used]

    w.clock.advance(61)
    await w.submit_with_quota(quota)
    assert len(w.db.committed.tasks) == 2


async def test_a_refused_webhook_url_stores_nothing_and_an_accepted_one_gets_a_secret() -> None:
    w = World()
    w.url_guard.refused["https://10.0.0.5/hook"] = "the address is private"
    with pytest.raises(InvalidInput, match="private"):
        await w.submitted(webhook_url="https://10.0.0.5/hook")
    assert w.db.committed.tasks == {}

    task_id = await w.submitted(webhook_url="https://hooks.example.com/in")
    secret = w.task(task_id).webhook_secret
    assert secret is not None
    assert secret.startswith("whsec_")


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (TaskRequest("   "), "must not be empty"),
        (TaskRequest("x", agents=["assistant"], plan=[]), "not both"),
        (TaskRequest("x", agents=["wizard"]), "unknown agent role"),
        (TaskRequest("x", model="gpt-9"), "not configured"),
    ],
)
async def test_invalid_requests_are_refused_before_anything_is_stored(
    request_: TaskRequest, message: str
) -> None:
    w = World()
    with pytest.raises(InvalidInput, match=message):
        await w.submit.execute(role=Role.MEMBER, owner="ann", request=request_)
    assert w.db.commits == 0


async def test_a_job_the_queue_refused_is_relayed_from_the_outbox() -> None:
    w = World()
    w.jobs.down = True
    task, created = await w.submit.execute(role=Role.MEMBER, owner="ann", request=REQUEST)
    assert created  # the task is stored even though its job could not be enqueued
    [entry] = w.db.committed.outbox_for(task.id)
    assert entry.dispatched_at is None

    w.jobs.down = False
    assert await w.dispatcher.relay() == 0  # too fresh: the fast path may still be on its way
    w.clock.advance(3)
    assert await w.dispatcher.relay() == 1
    assert w.jobs.runs == [(task.id, entry.id)]
    assert await w.dispatcher.relay() == 0  # sent once


async def test_a_tasks_priority_goes_with_its_job_on_the_fast_path_and_the_relay() -> None:
    w = World()
    high = TaskRequest(input=REQUEST.input, priority=Priority.HIGH)
    task, _ = await w.submit.execute(role=Role.MEMBER, owner="ann", request=high)
    assert task.priority is Priority.HIGH
    w.jobs.down = True
    lost, _ = await w.submit.execute(role=Role.MEMBER, owner="ann", request=high)
    w.jobs.down = False
    w.clock.advance(3)
    assert await w.dispatcher.relay() == 1
    assert [r[0] for r in w.jobs.runs] == [task.id, lost.id]
    assert w.jobs.priorities == [Priority.HIGH, Priority.HIGH]
    plain, _ = await w.submit.execute(role=Role.MEMBER, owner="ann", request=REQUEST)
    assert (plain.priority, w.jobs.priorities[-1]) == (Priority.NORMAL, Priority.NORMAL)
    assert high.fingerprint() != TaskRequest(input=REQUEST.input).fingerprint()


async def test_without_a_priority_the_task_gets_the_callers_default_and_an_explicit_one_wins() -> (
    None
):
    w = World()

    async def by_low_key(request: TaskRequest) -> Priority:
        task, _ = await w.submit.execute(
            role=Role.MEMBER, owner="etl", request=request, default_priority=Priority.LOW
        )
        assert w.jobs.priorities[-1] is w.task(task.id).priority  # its job's too
        return w.task(task.id).priority

    assert await by_low_key(REQUEST) is Priority.LOW
    assert await by_low_key(TaskRequest(REQUEST.input, priority=Priority.HIGH)) is Priority.HIGH
    # explicit, though it is what most keys default to
    assert await by_low_key(TaskRequest(REQUEST.input, priority=Priority.NORMAL)) is Priority.NORMAL


async def test_a_replay_without_a_priority_matches_after_the_keys_default_changed() -> None:
    w = World()
    first, _ = await w.submit.execute(
        role=Role.MEMBER, owner="etl", request=REQUEST, idempotency_key="k-1",
        default_priority=Priority.LOW,
    )  # fmt: skip
    again, created = await w.submit.execute(
        role=Role.MEMBER, owner="etl", request=REQUEST, idempotency_key="k-1",
        default_priority=Priority.HIGH,
    )  # fmt: skip
    assert (again.id, again.priority, created) == (first.id, Priority.LOW, False)
    explicit = TaskRequest(REQUEST.input, metadata=REQUEST.metadata, priority=Priority.LOW)
    with pytest.raises(Conflict, match="different request body"):  # not the body sent before
        await w.submit.execute(
            role=Role.MEMBER, owner="etl", request=explicit, idempotency_key="k-1",
            default_priority=Priority.LOW,
        )  # fmt: skip
    assert len(w.db.committed.tasks) == 1


async def test_a_role_the_quota_table_does_not_name_may_not_submit_and_nothing_is_written() -> None:
    """Defect 3: quotas were looked up by each router and ``SubmitTask`` took none by
    default, so a caller without a quota entry submitted without limits (fail open)."""
    w = World()
    with pytest.raises(Forbidden, match="viewer role may not submit"):
        await w.submit.execute(role=Role.VIEWER, owner="vic", request=REQUEST)
    assert w.jobs.runs == []
    assert w.db.committed.tasks == {}
