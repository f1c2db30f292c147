"""Following events as they happen: the log first, then live, without a gap or a duplicate.

The seam between replay and live is the classic race: read the log, then
subscribe, and whatever was committed in between is lost; subscribe first and
read the log, and it arrives twice. Here the live subscription is made active
first, the log is read after it, and every event goes through a per-task cursor
that only lets ``seq == last + 1`` through: an older event is dropped, a newer
one means something was missed, and the missing range is read from the log
(which, being committed before the newer event was published, has it). Live
delivery may lose messages (Redis pub/sub is at most once, a connection can
drop): the cursor heals such gaps on the next event, and an idle subscription
checks the task's progress every ``idle`` seconds, so nothing waits on a lost
message. That check is one read per task however many streams of the process
are quiet on it within ``share_reads`` seconds: 1,000 idle subscribers of one
task make about one read per ``share_reads`` seconds over which their checks
fall, where each used to make two. It reads the log only when the task is
ahead of the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from uuid import UUID

from chatsys.domain.shared.errors import NotFound
from chatsys.domain.shared.uow import Factory
from chatsys.domain.streaming.ports import (
    LiveFeed,
    LiveSignal,
    LiveSubscription,
    StreamingUnitOfWork,
)
from chatsys.domain.tasks.model import TERMINAL_EVENTS, TaskEvent, TaskStatus

REPLAY_PAGE = 500


class StreamInterrupted(Exception):
    """The stream stops before its end. ``last_seq`` is the last event it yielded; the
    client resumes after the last one it received."""

    def __init__(self, reason: str, last_seq: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.last_seq = last_seq


class SlowConsumer(StreamInterrupted):
    """The subscriber's buffer overflowed: it read slower than events came."""


class GoingAway(StreamInterrupted):
    """This process is shutting down; another one can serve the rest."""


@dataclass(frozen=True, slots=True)
class Idle:
    """Nothing happened for ``idle`` seconds (time for a keep-alive)."""


IDLE = Idle()


@dataclass(frozen=True, slots=True)
class StreamLimits:
    buffer: int = 1024  # live events held for one subscriber before it counts as slow
    idle: float = 15.0  # seconds without events before the log is checked (and IDLE sent)
    # Log reads of all streams at once: a storm of (re)connections queues here instead
    # of draining the database pool that the rest of the API needs.
    db_concurrency: int = 8
    # How long one task's progress read also answers the quiet checks of its other
    # streams in this process.
    share_reads: float = 1.0


Progress = tuple[int, TaskStatus] | None  # (last seq, status); None: no such task


class _Reads:
    """The log reads of all the streams of one use case, through one gate (see
    ``StreamLimits.db_concurrency``). A progress read for a quiet check is shared: a
    stream that asks while one of the same task is under way, or up to
    ``share_for`` seconds after it answered, gets that answer. A shared answer can
    be that old, so a missed event may be found one quiet spell later; it is never
    lost, and an answer that the task is over is final."""

    def __init__(
        self, uow: Factory[StreamingUnitOfWork], gate: asyncio.Semaphore, share_for: float
    ) -> None:
        self._uow = uow
        self._gate = gate
        self._share_for = share_for
        self._shared: dict[UUID, asyncio.Future[Progress]] = {}

    async def after(self, task_id: UUID, last: int, limit: int) -> Sequence[TaskEvent]:
        async with self._gate, self._uow() as uow:
            return await uow.events.after(task_id, last, limit=limit)

    async def progress(self, task_id: UUID, *, shared: bool = True) -> Progress:
        if not shared:
            return await self._read_progress(task_id)
        answer = self._shared.get(task_id)
        if answer is None:
            answer = asyncio.ensure_future(self._read_progress(task_id))
            self._shared[task_id] = answer
            answer.add_done_callback(functools.partial(self._settled, task_id))
        # Shielded: one reader going away must not cancel the read the others wait for.
        return await asyncio.shield(answer)

    async def _read_progress(self, task_id: UUID) -> Progress:
        async with self._gate, self._uow() as uow:
            return await uow.tasks.progress(task_id)

    def _settled(self, task_id: UUID, answer: asyncio.Future[Progress]) -> None:
        if answer.cancelled() or answer.exception() is not None:
            self._drop(task_id, answer)  # (the exception is retrieved: readers may be gone)
        else:
            asyncio.get_running_loop().call_later(self._share_for, self._drop, task_id, answer)

    def _drop(self, task_id: UUID, answer: asyncio.Future[Progress]) -> None:
        if self._shared.get(task_id) is answer:
            del self._shared[task_id]


class _Cursor:
    """One task's position: the last ``seq`` delivered, and how to fill a gap."""

    def __init__(self, reads: _Reads, task_id: UUID, last: int) -> None:
        self._reads = reads
        self.task_id = task_id
        self.last = last
        self.done = False

    async def catch_up(self, until: int | None = None) -> AsyncIterator[TaskEvent]:
        """Events after ``last`` from the log (up to ``until``), in order."""
        while not self.done and (until is None or self.last < until):
            limit = REPLAY_PAGE if until is None else min(REPLAY_PAGE, until - self.last)
            page = await self._reads.after(self.task_id, self.last, limit)
            for event in page:
                yield self.took(event)
            if len(page) < limit:
                return

    def took(self, event: TaskEvent) -> TaskEvent:
        self.last = event.seq
        self.done = event.type in TERMINAL_EVENTS
        return event

    async def offer(self, event: TaskEvent) -> AsyncIterator[TaskEvent]:
        """What to deliver for a live event: nothing (a duplicate), it, or the gap and it."""
        if self.done or event.seq <= self.last:
            return
        if event.seq > self.last + 1:
            async for missed in self.catch_up(until=event.seq - 1):
                yield missed
        if event.seq == self.last + 1:  # else the gap healed past it (read from the log)
            yield self.took(event)

    async def quiet(self) -> AsyncIterator[TaskEvent]:
        """After a quiet spell: the events the live feed missed, if the task is ahead;
        ``done`` is set when the task is over (or gone) and nothing is left."""
        progress = await self._reads.progress(self.task_id)
        if progress is None:
            self.done = True
            return
        last_seq, status = progress
        if last_seq > self.last:
            async for event in self.catch_up():
                yield event
        if status.is_terminal and self.last >= last_seq:
            self.done = True

    async def finished(self) -> bool:
        """Is the task over with nothing left after ``last``? (A fresh read.)"""
        progress = await self._reads.progress(self.task_id, shared=False)
        if progress is None:
            return True
        last_seq, status = progress
        return status.is_terminal and self.last >= last_seq


def _interrupt(signal: LiveSignal, last: int, buffer: int) -> StreamInterrupted:
    if signal is LiveSignal.OVERFLOW:
        return SlowConsumer(f"slow consumer: more than {buffer} events waited for it", last)
    return GoingAway("server going away", last)


class _Stream:
    """An open subscription: iterate it for events, await ``interrupted`` to learn,
    without reading, that it has to stop (its consumer fell behind, or shutdown)."""

    def __init__(self, live: LiveSubscription, limits: StreamLimits) -> None:
        self._live = live
        self._limits = limits

    def _last(self) -> int:
        raise NotImplementedError

    async def interrupted(self) -> StreamInterrupted:
        return _interrupt(await self._live.ended(), self._last(), self._limits.buffer)

    def _interrupt(self, signal: LiveSignal) -> StreamInterrupted:
        return _interrupt(signal, self._last(), self._limits.buffer)


class TaskStream(_Stream):
    """One task's events after ``after``: the history, then live, until its terminal
    event. Iterating raises StreamInterrupted when the stream has to stop early."""

    def __init__(self, cursor: _Cursor, live: LiveSubscription, limits: StreamLimits) -> None:
        super().__init__(live, limits)
        self._cursor = cursor

    def _last(self) -> int:
        return self._cursor.last

    @property
    def last_seq(self) -> int:
        return self._cursor.last

    async def __aiter__(self) -> AsyncIterator[TaskEvent | Idle]:
        cursor = self._cursor
        async for event in cursor.catch_up():
            yield event
        while not cursor.done:
            item = await self._live.next(self._limits.idle)
            if isinstance(item, TaskEvent):
                if item.seq == cursor.last + 1:  # the common case, without a generator
                    yield cursor.took(item)
                    continue
                async for event in cursor.offer(item):
                    yield event
            elif item is LiveSignal.RESYNC:
                async for event in cursor.catch_up():
                    yield event
            elif item is None:
                async for event in cursor.quiet():
                    yield event
                if not cursor.done:
                    yield IDLE
            else:
                raise self._interrupt(item)


class FollowTask:
    def __init__(
        self,
        uow: Factory[StreamingUnitOfWork],
        feed: LiveFeed,
        limits: StreamLimits,
        gate: asyncio.Semaphore | None = None,
    ) -> None:
        self._uow = uow
        self._feed = feed
        self.limits = limits
        self._gate = gate or asyncio.Semaphore(limits.db_concurrency)
        self._reads = _Reads(uow, self._gate, limits.share_reads)

    async def check(self, task_id: UUID, *, owner: str | None) -> None:
        """Raise NotFound unless ``owner`` may follow the task."""
        async with self._gate, self._uow() as uow:
            task = await uow.tasks.get(task_id, owner=owner)
        if task is None:
            raise NotFound(f"task {task_id} does not exist")

    async def is_exhausted(self, task_id: UUID, after: int) -> bool:
        """The task is finished and has no event after ``after``."""
        return await _Cursor(self._reads, task_id, after).finished()

    @contextlib.asynccontextmanager
    async def open(self, task_id: UUID, *, after: int) -> AsyncIterator[TaskStream]:
        """Subscribe live, then (while iterating) read the log: see the module doc.
        Call ``check`` first."""
        async with self._feed.task(task_id, buffer=self.limits.buffer) as live:
            yield TaskStream(_Cursor(self._reads, task_id, after), live, self.limits)


class ConversationStream(_Stream):
    """Every event of every task in a conversation from the moment of subscribing,
    each task from its first event: a task seen for the first time (one running
    already, or one created later) is read from its start, then followed live."""

    def __init__(self, reads: _Reads, live: LiveSubscription, limits: StreamLimits) -> None:
        super().__init__(live, limits)
        self._reads = reads
        self._cursors: dict[UUID, _Cursor] = {}

    def _last(self) -> int:
        return 0

    async def __aiter__(self) -> AsyncIterator[TaskEvent | Idle]:
        cursors = self._cursors
        while True:
            item = await self._live.next(self._limits.idle)
            if isinstance(item, TaskEvent):
                cursor = cursors.get(item.task_id)
                if cursor is None:
                    cursor = cursors[item.task_id] = _Cursor(self._reads, item.task_id, 0)
                async for event in cursor.offer(item):
                    yield event
            elif item is LiveSignal.RESYNC:
                for cursor in [c for c in cursors.values() if not c.done]:
                    async for event in cursor.catch_up():
                        yield event
            elif item is None:
                for cursor in [c for c in cursors.values() if not c.done]:
                    async for event in cursor.quiet():
                        yield event
                yield IDLE
            else:
                raise self._interrupt(item)


class FollowConversation:
    def __init__(
        self,
        uow: Factory[StreamingUnitOfWork],
        feed: LiveFeed,
        limits: StreamLimits,
        gate: asyncio.Semaphore | None = None,
    ) -> None:
        self._uow = uow
        self._feed = feed
        self.limits = limits
        self._gate = gate or asyncio.Semaphore(limits.db_concurrency)
        self._reads = _Reads(uow, self._gate, limits.share_reads)

    async def check(self, conversation_id: UUID, *, owner: str | None) -> None:
        async with self._gate, self._uow() as uow:
            if await uow.conversations.get(conversation_id, owner=owner) is None:
                raise NotFound(f"conversation {conversation_id} does not exist")

    @contextlib.asynccontextmanager
    async def open(self, conversation_id: UUID) -> AsyncIterator[ConversationStream]:
        async with self._feed.conversation(conversation_id, buffer=self.limits.buffer) as live:
            yield ConversationStream(self._reads, live, self.limits)
