"""The job queue ports (task runs, webhook attempts) on arq: one queue each, so the
worker serves them from separate slot pools (``chatsys.bootstrap.worker``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from arq.connections import ArqRedis

from chatsys.domain.tasks.model import Priority

RUN_TASK = "chatsys.run_task"
_LEADS = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2}  # times priority_lead
DELIVER_WEBHOOK = "chatsys.deliver_webhook"


class ArqJobQueue:
    def __init__(
        self,
        redis: ArqRedis,
        *,
        queue_name: str,
        webhook_queue_name: str | None = None,
        priority_lead: float = 60.0,
    ) -> None:
        self._redis = redis
        self._priority_lead = priority_lead
        self._queue_name = queue_name
        self._webhook_queue_name = webhook_queue_name or queue_name

    async def enqueue_run(
        self, task_id: UUID, dispatch_id: int, *, priority: Priority = Priority.NORMAL
    ) -> None:
        # One job id per outbox entry: re-sending an entry never makes a second job. arq
        # takes the jobs of lowest score (enqueue time) first: a priority's lead puts its
        # job ahead of those of lower priorities queued up to that long before it.
        lead = self._priority_lead * _LEADS[priority]
        await self._redis.enqueue_job(
            RUN_TASK,
            str(task_id),
            _job_id=f"run:{task_id}:{dispatch_id}",
            _queue_name=self._queue_name,
            _defer_until=datetime.now(UTC) - timedelta(seconds=lead) if lead else None,
        )

    async def enqueue_delivery(
        self, delivery_id: UUID, attempt: int, *, delay: float, held: bool = False
    ) -> None:
        # One job id per attempt: the relay re-sending it while it waits is a no-op. A
        # held-back attempt's job is still running under that id: this one gets its own
        # (the delivery row, claimed once, says whether a job has anything to do).
        job_id = f"webhook:{delivery_id}:{attempt}"
        if held:
            job_id += f":held:{uuid4().hex[:12]}"
        await self._redis.enqueue_job(
            DELIVER_WEBHOOK,
            str(delivery_id),
            _job_id=job_id,
            _queue_name=self._webhook_queue_name,
            _defer_by=delay + 0.05 if delay > 0 else None,
        )
