"""The job queue port on arq."""

from __future__ import annotations

from uuid import UUID

from arq.connections import ArqRedis

RUN_TASK = "chatsys.run_task"


class ArqJobQueue:
    def __init__(self, redis: ArqRedis, *, queue_name: str) -> None:
        self._redis = redis
        self._queue_name = queue_name

    async def enqueue_run(self, task_id: UUID, dispatch_id: int) -> None:
        # One job id per outbox entry: re-sending an entry never makes a second job.
        await self._redis.enqueue_job(
            RUN_TASK,
            str(task_id),
            _job_id=f"run:{task_id}:{dispatch_id}",
            _queue_name=self._queue_name,
        )
