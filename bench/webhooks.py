"""``webhooks``: how fast one worker drains a burst of deliveries to one live receiver.

``tasks`` queued tasks (each with a webhook_url on a live receiver on 127.0.0.1, an
HTTP/1.1 server keeping connections alive) are cancelled concurrently through the
real use case, so each one's delivery is written in its cancelling transaction, due
at once. No worker runs meanwhile; then one
``chatsys worker`` process (default settings) starts and sends them (signed, through
the SSRF-safe sender, which resolves and checks the address of every attempt, over
its kept-alive connections). Checked: every webhook-id arrives exactly once, none is
lost, every signature verifies, and every delivery row ends ``succeeded``.
Reported: deliveries per second from the first receipt to the last (so neither the
task ends nor the worker's start-up is counted), and the connections the receiver saw.

Baseline, same run, same kind of receiver (a fresh one): a plain ``httpx.AsyncClient``
posting the same number of signed bodies with the same concurrency, which is what the
worker can have in flight to one receiver: its webhook slots
(``CHATSYS_WORKER_WEBHOOK_CONCURRENCY``, 50) capped by
``CHATSYS_WEBHOOKS_MAX_IN_FLIGHT_PER_ENDPOINT`` (8), and counted the same way.

What a delivery costs the worker beyond the baseline's request: its claim and its
record, both in Postgres (``chatsys.infra.webhook_slots``: the attempts that end
together are recorded, and the slots they free claimed again, in one call of
``chatsys_webhook_record_claim``, alembic 0012), the signature, and the address check of
every attempt. A slot is busy until its attempt is recorded (the per-receiver limit
counts leases, across workers), so the record's round trip is part of every cycle.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path
from uuid import uuid4

import httpx
from pydantic import SecretStr
from sqlalchemy import text
from standardwebhooks import Webhook

from bench.startup import clean_env, process, say
from chatsys.bootstrap import Resources
from chatsys.bootstrap.components import webhook_callbacks
from chatsys.domain.tasks.cancel import CancelTask
from chatsys.domain.tasks.model import Task, TaskStatus
from chatsys.domain.webhooks.model import new_secret, signed_headers
from chatsys.infra.clock import SystemClock
from chatsys.infra.settings import (
    DatabaseSettings,
    RedisSettings,
    Settings,
    WebhookSettings,
    WorkerSettings,
)
from tests.webhook_receiver import Received, Receiver

Table = dict[str, dict[str, float]]
CANCELLERS = 32  # how many tasks end at the same moment


async def _queued_tasks(resources: Resources, url: str, count: int) -> list[Task]:
    now = SystemClock().now()
    tasks = [
        Task(uuid4(), "bench", f"task {n}", TaskStatus.QUEUED, now, webhook_url=url,
             webhook_secret=new_secret())
        for n in range(count)
    ]  # fmt: skip
    async with resources.unit_of_work() as uow:
        for task in tasks:
            await uow.tasks.add(task)
        await uow.commit()
    return tasks


async def _chatsys(
    settings: Settings, receiver: Receiver, count: int, worker: Callable[[], ContextManager[object]]
) -> tuple[float, int]:
    """(deliveries/s, connections): the deliveries are made with no worker running, then
    one starts; the rate is counted from the first receipt to the last."""
    resources = await Resources.open(settings, role="bench")
    try:
        tasks = await _queued_tasks(resources, f"{receiver.url}/hook", count)
        secrets = {str(t.id): t.webhook_secret for t in tasks}
        cancel = CancelTask(resources.unit_of_work, SystemClock(), webhook_callbacks(resources))
        gate = asyncio.Semaphore(CANCELLERS)

        async def end(task: Task) -> None:
            async with gate:
                await cancel.execute(task.id, owner="bench")

        say(f"webhooks: {count} tasks end ({CANCELLERS} at a time), no worker running yet")
        started = time.time()
        await asyncio.gather(*(end(t) for t in tasks))
        say(f"webhooks: all ended in {time.time() - started:.2f} s; one worker delivers")
        with worker():
            got = await receiver.wait_for(count, within=300)
            await asyncio.sleep(2.0)  # anything arriving twice would show now
        _check(receiver.received, count=count, secrets=secrets)
        async with resources.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT status, count(*) FROM webhook_deliveries GROUP BY status")
            )
            states = {str(status): int(n) for status, n in rows.all()}
        if states != {"succeeded": count}:
            raise RuntimeError(f"delivery rows: {states}")
        return _rate(got), receiver.connections
    finally:
        await resources.close()


def _rate(got: list[Received]) -> float:
    """Receipts per second, from the first to the last."""
    span = max(r.at for r in got) - min(r.at for r in got)
    return (len(got) - 1) / span if span > 0 else 0.0


def _task_of(body: bytes) -> str:
    task_id: str = json.loads(body)["data"]["task"]["id"]
    return task_id


def _check(received: list[Received], *, count: int, secrets: dict[str, str | None]) -> None:
    per_id = collections.Counter(r.headers["webhook-id"] for r in received)
    duplicates = {k: v for k, v in per_id.items() if v > 1}
    if len(per_id) != count or duplicates:
        raise RuntimeError(f"{len(per_id)} webhook-ids of {count}; duplicates: {duplicates}")
    for request in received:
        secret = secrets[_task_of(request.body)]
        assert secret is not None
        Webhook(secret).verify(request.body, request.headers)


async def _baseline(receiver: Receiver, count: int, concurrency: int) -> tuple[float, int]:
    secret = new_secret()
    bodies = [f'{{"type":"task.cancelled","n":{n}}}'.encode() for n in range(count)]
    queue = iter(enumerate(bodies))
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=15, limits=limits, follow_redirects=False) as client:

        async def sender() -> None:
            for n, body in queue:
                headers = signed_headers([secret], f"msg_{n}", int(time.time()), body)
                headers["content-type"] = "application/json"
                answer = await client.post(f"{receiver.url}/hook", content=body, headers=headers)
                answer.raise_for_status()

        await asyncio.gather(*(sender() for _ in range(concurrency)))
    got = await receiver.wait_for(count, within=60)
    return _rate(got), receiver.connections


def run_webhooks(database_url: str, redis_url: str, *, tasks: int = 1000) -> Table:
    hooks = WebhookSettings(allow_private_networks=True)
    # What one worker has in flight to one receiver: its webhook slots, capped per endpoint.
    in_flight = min(WorkerSettings().webhook_concurrency, hooks.max_in_flight_per_endpoint)
    settings = Settings(
        database=DatabaseSettings(url=SecretStr(database_url), pool_size=CANCELLERS),
        redis=RedisSettings(url=SecretStr(redis_url)),
        webhooks=hooks,
    )
    env = clean_env(
        CHATSYS_DATABASE_URL=database_url,
        CHATSYS_REDIS_URL=redis_url,
        CHATSYS_WEBHOOKS_ALLOW_PRIVATE_NETWORKS="true",
        CHATSYS_LOG_LEVEL="WARNING",
    )

    async def measure() -> tuple[tuple[float, int], tuple[float, int]]:
        with tempfile.TemporaryDirectory() as tmp:
            argv = [sys.executable, "-m", "chatsys", "worker"]

            def worker() -> ContextManager[object]:
                return process(argv, env, Path(tmp) / "worker.log")

            async with Receiver(keep_alive=True) as receiver:
                ours = await _chatsys(settings, receiver, tasks, worker)
        async with Receiver(keep_alive=True) as receiver:
            say(f"webhooks: baseline, plain httpx, {in_flight} in flight")
            theirs = await _baseline(receiver, tasks, in_flight)
        return ours, theirs

    (rate, connections), (base_rate, base_connections) = asyncio.run(measure())

    def row(ours: float, baseline: float) -> dict[str, float]:
        return {"chatsys": ours, "baseline": baseline, "ratio": ours / baseline if baseline else 0}

    return {
        "deliveries/s": row(rate, base_rate),
        "in flight to the receiver": row(in_flight, in_flight),
        "connections opened": row(connections, base_connections),
        "lost / duplicated": {"chatsys": 0.0, "baseline": 0.0, "ratio": 0.0},
    }
