"""The task queue port on arq. (Webhook deliveries have no jobs: the worker's webhook
slots claim them from Postgres, ``chatsys.infra.webhook_slots``.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from arq.connections import ArqRedis

from chatsys.domain.tasks.model import Priority

RUN_TASK = "chatsys.run_task"
_HIGH = ":high"  # the job id's mark of a high-priority run
_LEADS = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2}  # times priority_lead
DELIVER_WEBHOOK = "chatsys.deliver_webhook"  # jobs of old versions (chatsys.infra.jobs)


class ArqJobQueue:
    def __init__(
        self,
        redis: ArqRedis,
        *,
        queue_name: str,
        priority_lead: float = 60.0,
    ) -> None:
        self._redis = redis
        self._priority_lead = priority_lead
        self._queue_name = queue_name

    async def enqueue_run(
        self, task_id: UUID, dispatch_id: int, *, priority: Priority = Priority.NORMAL
    ) -> None:
        # One job id per outbox entry: re-sending an entry never makes a second job. arq
        # takes the jobs of lowest score (enqueue time) first: a priority's lead puts its
        # job ahead of those of lower priorities queued up to that long before it.
        # A high one's id says so: the worker keeps slots for those alone (``is_high_run``).
        lead = self._priority_lead * _LEADS[priority]
        mark = _HIGH if priority is Priority.HIGH else ""
        await self._redis.enqueue_job(
            RUN_TASK,
            str(task_id),
            _job_id=f"run:{task_id}:{dispatch_id}{mark}",
            _queue_name=self._queue_name,
            _defer_until=datetime.now(UTC) - timedelta(seconds=lead) if lead else None,
        )


def is_high_run(job_id: str) -> bool:
    """Whether ``job_id`` is a high-priority task run's (``ArqJobQueue.enqueue_run``)."""
    return job_id.startswith("run:") and job_id.endswith(_HIGH)
