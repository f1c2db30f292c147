"""The replay/live seam, on the real event log in Postgres, with a live feed whose
deliveries the test scripts: late, lost, doubled and out of order, as pub/sub can be."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import UUID

import httpx
import pytest

from chatsys.bootstrap import Resources
from chatsys.domain.shared.uow import Factory
from chatsys.domain.streaming.follow import FollowTask, Idle, SlowConsumer, StreamLimits
from chatsys.domain.streaming.ports import LiveSignal
from chatsys.domain.tasks.model import TaskEvent
from chatsys.domain.tasks.uow import TasksUnitOfWork
from chatsys.infra.db.unit_of_work import SqlUnitOfWork
from chatsys.infra.events import RedisEventHub
from chatsys.infra.settings import Settings


class ScriptedSubscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[TaskEvent | LiveSignal] = asyncio.Queue()

    async def next(self, wait: float) -> TaskEvent | LiveSignal | None:
        try:
            return await asyncio.wait_for(self.queue.get(), wait)
        except TimeoutError:
            return None

    async def ended(self) -> LiveSignal:
        await asyncio.Event().wait()  # the script sends its signals through next()
        raise AssertionError("unreachable")


class ScriptedFeed:
    """Entering a subscription runs ``on_subscribed`` before returning, as if events
    were committed and published between the subscription and the log read."""

    def __init__(self) -> None:
        self.subscription = ScriptedSubscription()
        self.on_subscribed: Callable[[], Awaitable[None]] | None = None

    @contextlib.asynccontextmanager
    async def task(self, task_id: UUID, *, buffer: int) -> AsyncIterator[ScriptedSubscription]:
        if self.on_subscribed is not None:
            await self.on_subscribed()
        yield self.subscription

    @contextlib.asynccontextmanager
    async def conversation(
        self, conversation_id: UUID, *, buffer: int
    ) -> AsyncIterator[ScriptedSubscription]:
        yield self.subscription


@pytest.fixture
async def resources(settings: Settings) -> AsyncIterator[Resources]:
    opened = await Resources.open(settings, role="test")
    yield opened
    await opened.close()


async def new_task(client: httpx.AsyncClient) -> UUID:
    made = await client.post("/v1/tasks", json={"input": "seam"})  # event 1: task.created
    return UUID(made.json()["id"])


async def append(resources: Resources, task_id: UUID, kind: str = "step.started") -> TaskEvent:
    async with SqlUnitOfWork(resources.session_factory) as uow:
        event = await uow.events.append(task_id, kind, {"n": kind})
        await uow.commit()
    return event


async def collect(follow: FollowTask, task_id: UUID, after: int = 0) -> list[int]:
    seqs = []
    async with follow.open(task_id, after=after) as stream:
        async for item in stream:
            if not isinstance(item, Idle):
                seqs.append(item.seq)
    return seqs


async def test_events_committed_between_subscribe_and_replay_come_once(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    task_id = await new_task(client)
    for _ in range(4):
        await append(resources, task_id)  # 2..5 in the log before anyone subscribes
    feed = ScriptedFeed()
    live = feed.subscription.queue

    async def in_the_gap() -> None:  # committed after subscribing, before the log read
        for _ in range(2):
            live.put_nowait(await append(resources, task_id))  # 6, 7: in log AND live

    feed.on_subscribed = in_the_gap
    follow = FollowTask(resources.unit_of_work, feed, StreamLimits(buffer=100, idle=0.5))

    async def later() -> None:
        await asyncio.sleep(0.2)
        await append(resources, task_id)  # 8: published but lost
        live.put_nowait(await append(resources, task_id))  # 9
        live.put_nowait(await append(resources, task_id, "step.completed"))  # 10
        live.put_nowait((await follow_log(resources, task_id))[8])  # 9 again (duplicate)
        live.put_nowait(await append(resources, task_id, "task.succeeded"))  # 11: the end

    driver = asyncio.create_task(later())
    assert await asyncio.wait_for(collect(follow, task_id), 10) == list(range(1, 12))
    await driver


async def follow_log(resources: Resources, task_id: UUID) -> list[TaskEvent]:
    async with SqlUnitOfWork(resources.session_factory) as uow:
        return list(await uow.events.after(task_id, 0, limit=1000))


async def test_random_losses_duplicates_and_reorders_never_show(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    rng = random.Random(2024)
    for _ in range(8):
        task_id = await new_task(client)
        feed = ScriptedFeed()
        live = feed.subscription.queue
        follow = FollowTask(resources.unit_of_work, feed, StreamLimits(buffer=100, idle=0.3))
        after = rng.randint(0, 1)
        total = rng.randint(5, 40)

        async def produce(
            task_id: UUID = task_id,
            total: int = total,
            live: asyncio.Queue[TaskEvent | LiveSignal] = live,
        ) -> None:
            held: list[TaskEvent] = []
            for n in range(total):
                kind = "task.failed" if n == total - 1 else "message.delta"
                event = await append(resources, task_id, kind)
                roll = rng.random()
                if roll < 0.15:
                    continue  # lost
                if roll < 0.3:
                    held.append(event)  # delivered late, out of order
                    continue
                live.put_nowait(event)
                if roll < 0.4:
                    live.put_nowait(event)  # doubled
                if held and rng.random() < 0.5:
                    live.put_nowait(held.pop(rng.randrange(len(held))))
                if rng.random() < 0.1:
                    live.put_nowait(LiveSignal.RESYNC)
                await asyncio.sleep(rng.random() * 0.01)
            for event in held:
                live.put_nowait(event)

        driver = asyncio.create_task(produce())
        seqs = await asyncio.wait_for(collect(follow, task_id, after), 20)
        await driver
        assert seqs == list(range(after + 1, total + 2)), seqs


async def test_an_overflowing_subscription_stops_the_stream_with_its_position(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    task_id = await new_task(client)
    feed = ScriptedFeed()
    follow = FollowTask(resources.unit_of_work, feed, StreamLimits(buffer=10, idle=5))
    seen: list[int] = []

    async def read() -> None:
        async with follow.open(task_id, after=0) as stream:
            feed.subscription.queue.put_nowait(await append(resources, task_id))
            feed.subscription.queue.put_nowait(LiveSignal.OVERFLOW)
            async for item in stream:
                if not isinstance(item, Idle):
                    seen.append(item.seq)

    with pytest.raises(SlowConsumer) as stopped:
        await read()
    assert seen == [1, 2]
    assert stopped.value.last_seq == 2
    assert str(stopped.value) == "slow consumer: more than 10 events waited for it"


class CountedUnitsOfWork:
    """The real units of work, counted as they are opened."""

    def __init__(self, factory: Factory[TasksUnitOfWork]) -> None:
        self._factory = factory
        self.opened = 0

    def __call__(self) -> TasksUnitOfWork:
        self.opened += 1
        return self._factory()


async def test_quiet_streams_of_one_task_share_their_progress_reads(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """50 streams of a task nobody runs, each through three quiet spells: every one
    gets its keep-alives, and the database sees one replay read per stream plus a
    few shared progress reads, not two reads per stream per spell (350)."""
    task_id = await new_task(client)
    units = CountedUnitsOfWork(resources.unit_of_work)
    hub = RedisEventHub(resources.redis)
    follow = FollowTask(units, hub, StreamLimits(idle=0.4, share_reads=0.3))
    streams, spells = 50, 3

    async def quiet_spells() -> list[int]:
        seqs: list[int] = []
        async with follow.open(task_id, after=0) as stream:
            idles = 0
            async for item in stream:
                if isinstance(item, Idle):
                    idles += 1
                    if idles == spells:
                        return seqs
                else:
                    seqs.append(item.seq)
        raise AssertionError("the stream of a queued task ended")

    try:
        async with asyncio.timeout(20):
            seen = await asyncio.gather(*(quiet_spells() for _ in range(streams)))
    finally:
        await hub.close()
    assert seen == [[1]] * streams  # task.created, replayed once each
    assert streams <= units.opened <= streams + 2 * spells, units.opened
