"""The outbox on real Postgres and Redis: a Redis outage between commit and enqueue loses
no task, and a job lost after dispatch is sent again once its lease expires."""

from __future__ import annotations

from arq.connections import ArqRedis
from sqlalchemy import text

from chatsys.bootstrap import Resources
from chatsys.domain.access.model import Role
from chatsys.domain.planning.planner import Planner
from chatsys.domain.tasks.submission import Dispatcher, SubmitTask, TaskQuota, TaskRequest
from chatsys.infra.clock import SystemClock
from chatsys.infra.queue import ArqJobQueue
from chatsys.infra.settings import Settings
from tests.support import free_port

ANY_ROLE = {Role.MEMBER: TaskQuota()}


async def _queued_jobs(resources: Resources, settings: Settings) -> int:
    count: int = await resources.redis.zcard(settings.worker.queue_name)
    return count


async def test_a_redis_outage_at_submit_loses_nothing(settings: Settings) -> None:
    resources = await Resources.open(settings, role="test")
    dead = ArqRedis(host="127.0.0.1", port=free_port())  # nothing listens there
    try:
        queue_name = settings.worker.queue_name
        broken = Dispatcher(resources.unit_of_work, ArqJobQueue(dead, queue_name=queue_name))
        submit = SubmitTask(
            resources.unit_of_work, SystemClock(), Planner(), broken, quotas=ANY_ROLE
        )
        _, created = await submit.execute(
            owner="local", request=TaskRequest(input="hi"), role=Role.MEMBER
        )
        assert created
        assert await _queued_jobs(resources, settings) == 0  # the enqueue failed

        healthy = Dispatcher(
            resources.unit_of_work, ArqJobQueue(resources.redis, queue_name=queue_name)
        )
        assert await healthy.relay(older_than=0) == 1
        assert await _queued_jobs(resources, settings) == 1
        assert await healthy.relay(older_than=0) == 0  # sent once
    finally:
        await dead.aclose()
        await resources.close()


async def test_a_lost_job_is_sent_again_after_the_lease(settings: Settings) -> None:
    resources = await Resources.open(settings, role="test")
    try:
        queue = ArqJobQueue(resources.redis, queue_name=settings.worker.queue_name)
        dispatcher = Dispatcher(resources.unit_of_work, queue)
        submit = SubmitTask(
            resources.unit_of_work, SystemClock(), Planner(), dispatcher, quotas=ANY_ROLE
        )
        task, _ = await submit.execute(
            owner="local", request=TaskRequest(input="hi"), role=Role.MEMBER
        )
        assert await dispatcher.relay(older_than=0, lease=60) == 0  # dispatched, lease fresh
        await resources.redis.flushdb()  # Redis lost the job
        async with resources.engine.begin() as conn:
            await conn.execute(
                text("UPDATE task_outbox SET dispatched_at = now() - interval '2 minutes'")
            )
        assert await dispatcher.relay(older_than=0, lease=60) == 1
        assert await _queued_jobs(resources, settings) == 1
        job_id = f"arq:job:run:{task.id}:1"
        assert await resources.redis.exists(job_id) == 1  # the same job id again
    finally:
        await resources.close()
