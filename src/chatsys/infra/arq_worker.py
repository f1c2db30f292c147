"""arq's ``Worker``, kept alive through Redis outages.

arq lets any Redis error out of its poll loop, and ``Worker.main`` with it: a Redis
restart ends the process (``WatchError: A ConnectionError occurred ... while watching``
from the transaction that claims a job). Retry options on the Redis pool cannot help
there: redis-py never retries inside a ``WATCH`` (it raises that ``WatchError`` by
design), bounded retries only move the exit to a longer outage, and unbounded ones
would hang every caller (the heartbeat, a shutdown). So this subclass keeps arq's loop
and changes what a Redis outage (``chatsys.infra.outages``) does where arq meets one:

- a poll: the outage is reported once (``OutageMonitor``), the loop waits (backoff
  from ``backoff`` to ``max_backoff`` seconds) and polls again; the first poll that
  works after one calls ``on_redis_back`` (the worker re-sends what Redis may have
  lost);
- claiming a job: the slot arq took for it is given back (arq would leak it, and a
  worker that lost ``max_jobs`` slots so would never take a job again);
- finishing a job: arq's bookkeeping is tried again until Redis answers (at most
  ``finish_patience`` seconds), so a job that ran through the outage leaves the queue;
  if even that fails, or the job could not start, its in-progress mark is removed once
  Redis is back, so it can be picked again. Every chatsys job may run twice: the
  database says whether anything is left to do.

- starting: a worker started while Redis is away waits for it (one warning, then one
  line when it answers) instead of exiting after arq's few connection retries.

One change has nothing to do with outages: the order jobs start in. arq reads up to
``queue_read_limit`` job ids per poll and then starts them in that order as slots free
up, so a slot that frees while it works through a read goes to a job of that read,
even when a job of lower score (a higher priority, ``chatsys.infra.queue``) was queued
since. Here a read only fills the slots that were free before it was taken; a slot that
frees later waits for the next poll (``poll_delay`` seconds at most), whose read sees
the job queued meanwhile. Jobs already running in this worker are passed over without
asking Redis (arq would find their in-progress key), so a poll does not spend round
trips on them.

``reserved`` of the ``max_jobs`` slots are only for the jobs ``urgent`` picks out (the
task worker's: high-priority runs): the other jobs run in the rest, so an urgent job
queued while those are all busy starts at the next poll instead of waiting for one of
them to end.

Idle, it does not poll every ``poll_delay`` as arq does (a Redis round trip each time,
100 a second at 10 ms: most of an idle stack's CPU): with ``idle_poll`` set, a poll that
started no job is followed by a wait on the queue's wake-up channel
(``chatsys.infra.redis.wake_channel``, published by every enqueue through chatsys'
client), which ends when a job comes, when the earliest deferred job falls due, or
after ``idle_poll`` seconds (the backstop for a job no one announced: one put in by a
plain arq client, one whose in-progress mark expired, a message lost while Redis
restarted). A busy worker (a poll that started a job, or left one for lack of a free
slot, or all its slots taken) polls every ``poll_delay`` as before: a slot frees
unannounced.

Running jobs are not touched: a task keeps running on Postgres (its lease is there),
and its live events are lost to pub/sub only, never to the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

from arq.connections import ArqRedis, create_pool
from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from chatsys.infra.logging import get_logger
from chatsys.infra.outages import REDIS, OutageMonitor, outage_of
from chatsys.infra.redis import wake_channel

log = get_logger(__name__)


class SupervisedWorker(Worker):
    """``outages`` and ``on_redis_back`` are the process' own: its start-up hook (the
    composition root) sets them before the first poll."""

    outages: OutageMonitor | None = None
    on_redis_back: Callable[[], Awaitable[None]] | None = None

    def __init__(
        self,
        *args: Any,
        backoff: float = 0.1,
        max_backoff: float = 1.0,
        finish_patience: float = 30.0,
        reserved: int = 0,
        urgent: Callable[[str], bool] | None = None,
        idle_poll: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if not 0 <= reserved < self.max_jobs:
            raise ValueError(f"reserved must be from 0 to max_jobs - 1, not {reserved}")
        self._reserved = reserved if urgent is not None else 0
        self._urgent = urgent or (lambda _: False)
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._finish_patience = finish_patience
        self._failed_polls = 0
        self._unfinished: set[str] = set()  # job ids whose in-progress mark must go
        self._free_before_read: int | None = None  # slots free when the poll read the queue
        # None: arq's fixed poll_delay; else the longest idle wait, within arq's health
        # check interval so its health key (TTL interval + 1 s) stays set.
        self._idle_poll = None if idle_poll is None else min(idle_poll, self.health_check_interval)
        self._wakeups: PubSub | None = None
        self._started = 0  # jobs the current poll started
        self._passed_over = False  # the current poll left a queued job for lack of a slot

    async def main(self) -> None:
        if self._pool is None:
            self._pool = await self._connect()
        await super().main()

    async def _connect(self) -> ArqRedis:
        """arq's pool, once Redis answers: tried with backoff (up to ``max_backoff`` x 5
        seconds apart) for as long as it takes; a signal ends the wait (arq cancels
        ``main``)."""
        assert self.redis_settings is not None  # arq fills in its defaults
        once = dataclasses.replace(self.redis_settings, conn_retries=0)  # we retry here
        failures = 0
        started = time.monotonic()
        while True:
            try:
                pool = await create_pool(
                    once,
                    job_deserializer=self.job_deserializer,
                    job_serializer=self.job_serializer,
                    default_queue_name=self.queue_name,
                    expires_extra_ms=self.expires_extra_ms,
                )
            except Exception as exc:
                if outage_of(exc) != REDIS:
                    raise
                if not failures:
                    log.warning("chatsys.worker.waiting_for_redis", error=str(exc))
                failures += 1
                await asyncio.sleep(
                    min(self._max_backoff * 5, self._backoff * 2 ** min(failures, 8))
                )
                continue
            if failures:
                log.info(
                    "chatsys.worker.redis_answered",
                    waited_s=round(time.monotonic() - started, 1),
                    attempts=failures + 1,
                )
            return pool

    async def _poll_iteration(self) -> None:
        # Counted before arq's read is sent: no slot that frees after it is counted.
        self._free_before_read = self.max_jobs - self.job_counter
        try:
            self._started = 0
            self._passed_over = False
            await super()._poll_iteration()
            if self._failed_polls or self._unfinished:
                await self._recovered()
            if self._idle():
                await self._wait_for_work()
        except Exception as exc:
            if outage_of(exc) != REDIS:
                raise
            self._report(exc)
            self._failed_polls += 1
            await asyncio.sleep(
                min(self._max_backoff, self._backoff * 2 ** min(self._failed_polls, 8))
            )

    def _idle(self) -> bool:
        return (
            self._idle_poll is not None
            and not self.burst
            and self.allow_pick_jobs
            and self._started == 0
            and not self._passed_over  # a slot it could take frees unannounced
            and self.job_counter < self.max_jobs
        )

    async def _wait_for_work(self) -> None:
        """Until a job is announced on the queue's channel, the earliest deferred job is
        due, or ``idle_poll`` seconds have passed; at once after (re)subscribing, since a
        job may have come before the subscription."""
        assert self._idle_poll is not None
        now = timestamp_ms()
        due = await self.pool.zrangebyscore(
            self.queue_name, min=now, max="+inf", start=0, num=1, withscores=True
        )
        timeout = min(self._idle_poll, (due[0][1] - now) / 1000 + 0.001) if due else self._idle_poll
        if timeout <= 0:
            return
        try:
            if self._wakeups is None:
                self._wakeups = self.pool.pubsub()
                await self._wakeups.subscribe(wake_channel(self.queue_name))
                return
            if await self._wakeups.get_message(timeout=timeout) is None:
                return
            for _ in range(1000):  # a burst of enqueues wakes one poll, not one each
                if await self._wakeups.get_message(timeout=0) is None:
                    return
        except (RedisError, OSError):
            # Redis away or the connection dropped: poll now (the poll reports an outage
            # and backs off); the next wait subscribes again.
            await self._close_wakeups()

    async def _close_wakeups(self) -> None:
        wakeups, self._wakeups = self._wakeups, None
        if wakeups is not None:
            with contextlib.suppress(RedisError, OSError):
                await wakeups.aclose()  # type: ignore[no-untyped-call]

    async def _recovered(self) -> None:
        for job_id in list(self._unfinished):
            await self.pool.delete(in_progress_key_prefix + job_id)
            self._unfinished.discard(job_id)
        if self._failed_polls:
            self._failed_polls = 0
            log.info("chatsys.worker.polling_again")
            if self.on_redis_back is not None:
                try:
                    await self.on_redis_back()
                except Exception as exc:  # the maintenance loop does the same, later
                    log.warning("chatsys.worker.redis_back_hook_failed", error=str(exc))

    def _report(self, exc: BaseException) -> None:
        if self.outages is not None:
            self.outages.report(exc)
        else:
            log.warning("chatsys.worker.redis_unavailable", error=str(exc))

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Start jobs of ``job_ids`` (one read of the queue, lowest score first) in as
        many slots as were free before that read, and no more: a slot freed since is
        for the next read. A job that is not urgent only takes a slot left to such
        jobs."""
        free = self._free_before_read
        self._free_before_read = None
        budget = self.max_jobs - self.job_counter if free is None else free
        room = self._room_for_others()
        for raw in job_ids:
            job_id = raw.decode()
            before = self.tasks.get(job_id)
            if before is not None and not before.done():
                continue  # running here
            if budget <= 0 or self.job_counter >= self.max_jobs:
                self._passed_over = True
                return
            urgent = self._urgent(job_id)
            if not urgent and room <= 0:
                self._passed_over = True
                continue  # an urgent job further on may still start
            try:
                await super().start_jobs([raw])
                if self.tasks.get(job_id) is not before:
                    self._started += 1
            except Exception:
                # arq counted a slot for this job before the claim failed, and only
                # gives it back when a started job ends: give it back here.
                if self.tasks.get(job_id) is before:
                    self.job_counter -= 1
                    self.sem.release()
                raise
            if self.tasks.get(job_id) is not before:
                budget -= 1
                room -= not urgent

    def _room_for_others(self) -> int:
        """Slots free to jobs that are not urgent (without reserved slots: all)."""
        if not self._reserved:
            return self.max_jobs
        others = sum(1 for job_id, t in self.tasks.items() if not t.done()
                     and not self._urgent(job_id))  # fmt: skip
        return self.max_jobs - self._reserved - others

    async def run_job(self, job_id: str, score: int) -> None:
        try:
            await super().run_job(job_id, score)
        except Exception as exc:
            if outage_of(exc) != REDIS:
                raise
            self._report(exc)
            self._unfinished.add(job_id)
            log.warning("chatsys.worker.job_left_in_queue", job_id=job_id)

    async def _patiently(self, attempt: Callable[[], Awaitable[None]]) -> None:
        deadline = time.monotonic() + self._finish_patience
        delay = self._backoff
        while True:
            try:
                await attempt()
                return
            except Exception as exc:
                if outage_of(exc) != REDIS or time.monotonic() + delay > deadline:
                    raise
                self._report(exc)
            await asyncio.sleep(delay)
            delay = min(self._max_backoff, delay * 2)

    async def finish_job(self, job_id: str, *args: Any, **kwargs: Any) -> None:
        finish = super().finish_job
        await self._patiently(lambda: finish(job_id, *args, **kwargs))

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        finish = super().finish_failed_job
        await self._patiently(lambda: finish(job_id, result_data))

    async def close(self) -> None:
        """arq's close, except that Redis being away does not skip the shutdown hook."""
        await self._close_wakeups()
        try:
            await super().close()
        except Exception as exc:
            if outage_of(exc) != REDIS:
                raise
            log.warning("chatsys.worker.redis_away_at_shutdown", error=str(exc))
            if self.on_shutdown is not None:
                await self.on_shutdown(self.ctx)
