"""A live subscription's quiet check comes ``wait`` after the newest event, not up to
twice that: a stream whose live message was lost (pub/sub is at most once) looks in
the log one keep-alive period after the last event it saw."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from chatsys.domain.tasks.model import TaskEvent
from chatsys.infra.events import _Subscription

WAIT = 1.0


def _event(seq: int) -> TaskEvent:
    return TaskEvent(
        task_id=uuid.uuid4(), seq=seq, type="step.delta", data={}, created_at=datetime.now(UTC)
    )


async def test_the_quiet_check_comes_one_period_after_the_newest_event() -> None:
    loop = asyncio.get_running_loop()
    sub = _Subscription(buffer=10)
    reading = asyncio.create_task(sub.next(WAIT))  # arms the idle timer
    await asyncio.sleep(0.05)
    sub.offer(_event(1))  # just after the timer was armed
    offered = loop.time()
    first = await reading
    assert isinstance(first, TaskEvent)
    assert first.seq == 1
    assert await sub.next(WAIT) is None  # quiet now
    quiet_after = loop.time() - offered
    sub.close()
    # One period after the event (the old timer looked again a whole period after it
    # first fired: ~1.95 s here).
    assert WAIT * 0.9 <= quiet_after < WAIT * 1.5, quiet_after
