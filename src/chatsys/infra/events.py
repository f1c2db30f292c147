"""Live events over Redis pub/sub: published after commit, fanned out in each API process.

Channels: ``chatsys:ev:task:<id>`` carries every event of a task and
``chatsys:ev:conv:<id>`` every event of the tasks in a conversation. A message is
one event as JSON. Pub/sub is at most once; the durable log in Postgres is the
truth, and ``chatsys.domain.streaming.follow`` heals any gap from it.

Each API process holds one pub/sub connection (``RedisEventHub``): a channel is
subscribed in Redis once, however many local subscribers it has, and each
message is decoded once and handed to every subscriber's bounded buffer without
waiting, so a slow subscriber can never hold up the others or the publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from chatsys.domain.streaming.ports import LiveSignal, LiveSubscription
from chatsys.domain.tasks.model import TaskEvent
from chatsys.infra.logging import get_logger
from chatsys.infra.outages import OutageMonitor
from chatsys.infra.redis import KEY_PREFIX

log = get_logger(__name__)

CHANNEL_PREFIX = f"{KEY_PREFIX}ev:"
SUBSCRIBE_TIMEOUT = 5.0


def task_channel(task_id: UUID) -> str:
    return f"{CHANNEL_PREFIX}task:{task_id}"


def conversation_channel(conversation_id: UUID) -> str:
    return f"{CHANNEL_PREFIX}conv:{conversation_id}"


def encode(event: TaskEvent) -> bytes:
    return orjson.dumps(
        {
            "task_id": str(event.task_id),
            "seq": event.seq,
            "type": event.type,
            "data": event.data,
            "ts": event.created_at,
        }
    )


def decode(raw: bytes) -> TaskEvent:
    body: dict[str, Any] = orjson.loads(raw)
    return TaskEvent(
        UUID(body["task_id"]),
        int(body["seq"]),
        str(body["type"]),
        body["data"],
        datetime.fromisoformat(body["ts"]),
    )


class RedisEventPublisher:
    """Publishes committed events. A failure is logged, not raised: the commit stands
    and subscribers find the events in the log. While Redis is away, ``outages`` logs
    the outage once instead of a line per publish."""

    def __init__(self, redis: Redis, *, outages: OutageMonitor | None = None) -> None:
        self._redis = redis
        self._outages = outages

    async def publish(self, events: Sequence[tuple[TaskEvent, UUID | None]]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for event, conversation_id in events:
                    raw = encode(event)
                    pipe.publish(task_channel(event.task_id), raw)
                    if conversation_id is not None:
                        pipe.publish(conversation_channel(conversation_id), raw)
                await pipe.execute()
        except Exception as exc:  # never undo a commit that happened
            if self._outages is None or self._outages.report(exc) is None:
                log.warning("events.publish_failed", error=repr(exc), count=len(events))


class _Subscription:
    """One subscriber's bounded buffer of live events.

    Cheap per event, since one event is offered to every subscriber of its task: no
    timer is armed per wait (a timer per wait per subscriber is what fan-out to
    thousands would spend its time on). One idle timer runs per subscription; when
    it fires and nothing came for ``wait`` seconds, the waiting reader gets None (a
    timer that finds an event since it was armed is set again for what is left of
    ``wait`` after that event, so the quiet check comes ``wait`` after the last one,
    not up to twice that).
    """

    def __init__(self, buffer: int) -> None:
        self._limit = buffer
        self._items: deque[TaskEvent | LiveSignal] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._active = False  # something arrived since the idle timer was armed
        self._last = 0.0  # loop time of the newest event
        self._idle_due = False
        self._ended: LiveSignal | None = None
        self._ended_event = asyncio.Event()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def offer(self, event: TaskEvent) -> None:
        if self._ended is not None:
            return
        if len(self._items) >= self._limit:
            self.end(LiveSignal.OVERFLOW)
            return
        self._items.append(event)
        self._active = True
        self._last = asyncio.get_running_loop().time()
        self._wake()

    def resync(self) -> None:
        if self._ended is None and (not self._items or self._items[-1] is not LiveSignal.RESYNC):
            self._items.append(LiveSignal.RESYNC)
            self._wake()

    def end(self, signal: LiveSignal) -> None:
        if self._ended is None:
            self._ended = signal
            self._items.clear()
            self._wake()
            self._ended_event.set()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def ended(self) -> LiveSignal:
        await self._ended_event.wait()
        assert self._ended is not None
        return self._ended

    def _arm(self, wait: float, after: float | None = None) -> None:
        self._active = False
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(wait if after is None else after, self._tick, wait)

    def _tick(self, wait: float) -> None:
        self._timer = None
        if self._active:  # not idle: look again ``wait`` after the newest event
            left = wait - (asyncio.get_running_loop().time() - self._last)
            self._arm(wait, max(left, 0.0))
            return
        self._idle_due = True
        self._wake()

    async def next(self, wait: float) -> TaskEvent | LiveSignal | None:
        while True:
            if self._ended is not None:
                return self._ended
            if self._items:
                return self._items.popleft()
            if self._idle_due:
                self._idle_due = False
                return None
            if self._timer is None:
                self._arm(wait)
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class _Channel:
    __slots__ = ("active", "subscribers")

    def __init__(self) -> None:
        self.subscribers: set[_Subscription] = set()
        self.active = asyncio.Event()  # Redis confirmed the SUBSCRIBE


class RedisEventHub:
    """The live feed of one process (``chatsys.domain.ports.LiveFeed``)."""

    def __init__(self, redis: Redis, *, reconnect_delay: float = 0.5) -> None:
        self._redis = redis
        self._pubsub: PubSub | None = None
        self._channels: dict[str, _Channel] = {}
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._reconnect_delay = reconnect_delay
        self._going_away = False

    @property
    def subscriber_count(self) -> int:
        return sum(len(c.subscribers) for c in self._channels.values())

    def task(
        self, task_id: UUID, *, buffer: int
    ) -> contextlib.AbstractAsyncContextManager[LiveSubscription]:
        return self._subscribe(task_channel(task_id), buffer)

    def conversation(
        self, conversation_id: UUID, *, buffer: int
    ) -> contextlib.AbstractAsyncContextManager[LiveSubscription]:
        return self._subscribe(conversation_channel(conversation_id), buffer)

    @contextlib.asynccontextmanager
    async def _subscribe(self, name: str, buffer: int) -> AsyncIterator[LiveSubscription]:
        subscription = _Subscription(buffer)
        if self._going_away:
            subscription.end(LiveSignal.GOING_AWAY)
            yield subscription
            return
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel()
            channel.subscribers.add(subscription)
            try:
                await self._send("SUBSCRIBE", name)
            except BaseException:
                self._forget(name, channel, subscription)
                raise
        else:
            channel.subscribers.add(subscription)
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                await channel.active.wait()
            yield subscription
        finally:
            subscription.close()
            await self._leave(name, channel, subscription)

    def _forget(self, name: str, channel: _Channel, subscription: _Subscription) -> bool:
        channel.subscribers.discard(subscription)
        if channel.subscribers or self._channels.get(name) is not channel:
            return False
        del self._channels[name]
        return True

    async def _leave(self, name: str, channel: _Channel, subscription: _Subscription) -> None:
        if self._forget(name, channel, subscription) and self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._send("UNSUBSCRIBE", name)

    async def _send(self, command: str, name: str) -> None:
        # One at a time, so Redis sees (UN)SUBSCRIBEs in the order they were decided.
        async with self._lock:
            if self._pubsub is None:
                self._pubsub = self._redis.pubsub()
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(), name="chatsys-event-hub")
            if command == "SUBSCRIBE":
                await self._pubsub.subscribe(name)
            else:
                await self._pubsub.unsubscribe(name)

    async def _read(self) -> None:
        assert self._pubsub is not None
        pubsub = self._pubsub
        while True:
            try:
                if not pubsub.subscribed:
                    await asyncio.sleep(0.1)
                    continue
                message = await pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                await self._reconnect(pubsub, exc)
                continue
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        name = message["channel"].decode() if isinstance(message["channel"], bytes) else ""
        channel = self._channels.get(name)
        if channel is None:
            return
        if kind == "message":
            try:
                event = decode(message["data"])
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("events.undecodable", channel=name, error=repr(exc))
                return
            for subscription in tuple(channel.subscribers):
                subscription.offer(event)
        elif kind == "subscribe":
            channel.active.set()

    async def _reconnect(self, pubsub: PubSub, error: BaseException) -> None:
        """Redis went away: mark every subscriber for a resync, reconnect (redis-py
        subscribes the channels again) and resync once more for what was missed."""
        log.warning("events.hub_disconnected", error=repr(error))
        for channel in self._channels.values():
            for subscription in channel.subscribers:
                subscription.resync()
        while True:
            await asyncio.sleep(self._reconnect_delay)
            try:
                await pubsub.connect()  # type: ignore[no-untyped-call]
                await pubsub.ping()
            except (RedisError, OSError):
                continue
            break
        log.info("events.hub_reconnected", channels=len(self._channels))
        for channel in self._channels.values():
            for subscription in channel.subscribers:
                subscription.resync()

    def going_away(self) -> None:
        """The process is shutting down: end every subscription (clients reconnect
        elsewhere) and refuse new ones."""
        self._going_away = True
        for channel in self._channels.values():
            for subscription in channel.subscribers:
                subscription.end(LiveSignal.GOING_AWAY)

    async def close(self) -> None:
        self.going_away()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
