"""``webhooks``: many tasks finishing at once, each calling its webhook_url.

``tasks`` queued tasks (each with a webhook_url on a live receiver on 127.0.0.1)
are cancelled concurrently through the real use case, so each one's delivery is
written in its cancelling transaction and its first attempt is enqueued after the
commit; one ``chatsys worker`` process sends them (signed, through the SSRF-safe
sender, which resolves and checks the address of every attempt). Checked: every
webhook-id arrives exactly once, none is lost, every signature verifies, and
every delivery row ends ``succeeded``. Reported: deliveries per second, and p50/p99
delay from each task's end (its ``finished_at``) to the receipt.

Baseline, same run, same receiver: a plain ``httpx.AsyncClient`` posting the same
number of bodies with the same concurrency as the worker's ``webhook_concurrency``, delays
counted from the start of that burst.
"""

from __future__ import annotations

import asyncio
import collections
import json
import statistics
import sys
import tempfile
import time
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
from chatsys.infra.redis import WORKERS_KEY
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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


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


async def _wait_for_worker(resources: Resources, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await resources.redis.zcard(WORKERS_KEY):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("the chatsys worker did not start")


async def _chatsys(settings: Settings, receiver: Receiver, count: int) -> tuple[float, list[float]]:
    resources = await Resources.open(settings, role="bench")
    try:
        await _wait_for_worker(resources)
        tasks = await _queued_tasks(resources, f"{receiver.url}/hook", count)
        secrets = {str(t.id): t.webhook_secret for t in tasks}
        cancel = CancelTask(resources.unit_of_work, SystemClock(), webhook_callbacks(resources))
        ended: dict[str, float] = {}
        gate = asyncio.Semaphore(CANCELLERS)

        async def end(task: Task) -> None:
            async with gate:
                done = await cancel.execute(task.id, owner="bench")
                assert done.finished_at is not None
                ended[str(task.id)] = done.finished_at.timestamp()

        say(f"webhooks: {count} tasks end ({CANCELLERS} at a time); one worker delivers")
        started = time.time()
        await asyncio.gather(*(end(t) for t in tasks))
        say(f"webhooks: all ended in {time.time() - started:.2f} s; waiting for deliveries")
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
        delays = []
        for request in got:
            task_id = _task_of(request.body)
            delays.append((request.at - ended[task_id]) * 1000)
        span = max(r.at for r in got) - min(ended.values())
        return count / span, delays
    finally:
        await resources.close()


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


async def _baseline(receiver: Receiver, count: int, concurrency: int) -> tuple[float, list[float]]:
    secret = new_secret()
    bodies = [f'{{"type":"task.cancelled","n":{n}}}'.encode() for n in range(count)]
    queue = iter(enumerate(bodies))
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=15, limits=limits, follow_redirects=False) as client:
        started = time.time()

        async def sender() -> None:
            for n, body in queue:
                headers = signed_headers([secret], f"msg_{n}", int(time.time()), body)
                headers["content-type"] = "application/json"
                answer = await client.post(f"{receiver.url}/hook", content=body, headers=headers)
                answer.raise_for_status()

        await asyncio.gather(*(sender() for _ in range(concurrency)))
    got = await receiver.wait_for(count, within=60)
    delays = [(r.at - started) * 1000 for r in got]
    return count / (max(r.at for r in got) - started), delays


def run_webhooks(database_url: str, redis_url: str, *, tasks: int = 1000) -> Table:
    workers = WorkerSettings()
    settings = Settings(
        database=DatabaseSettings(url=SecretStr(database_url), pool_size=CANCELLERS),
        redis=RedisSettings(url=SecretStr(redis_url)),
        webhooks=WebhookSettings(allow_private_networks=True),
    )
    env = clean_env(
        CHATSYS_DATABASE_URL=database_url,
        CHATSYS_REDIS_URL=redis_url,
        CHATSYS_WEBHOOKS_ALLOW_PRIVATE_NETWORKS="true",
        CHATSYS_LOG_LEVEL="WARNING",
    )

    async def measure() -> tuple[tuple[float, list[float]], tuple[float, list[float]]]:
        async with Receiver() as receiver:
            with (
                tempfile.TemporaryDirectory() as tmp,
                process([sys.executable, "-m", "chatsys", "worker"], env,
                        Path(tmp) / "worker.log"),
            ):  # fmt: skip
                ours = await _chatsys(settings, receiver, tasks)
        async with Receiver() as receiver:
            say(f"webhooks: baseline, plain httpx, {workers.webhook_concurrency} in flight")
            theirs = await _baseline(receiver, tasks, workers.webhook_concurrency)
        return ours, theirs

    (rate, delays), (base_rate, base_delays) = asyncio.run(measure())

    def row(ours: float, baseline: float) -> dict[str, float]:
        return {"chatsys": ours, "baseline": baseline, "ratio": ours / baseline if baseline else 0}

    return {
        "deliveries/s": row(rate, base_rate),
        "end to receipt, p50 (ms)": row(percentile(delays, 50), percentile(base_delays, 50)),
        "end to receipt, p99 (ms)": row(percentile(delays, 99), percentile(base_delays, 99)),
        "end to receipt, mean (ms)": row(statistics.mean(delays), statistics.mean(base_delays)),
        "lost / duplicated": {"chatsys": 0.0, "baseline": 0.0, "ratio": 0.0},
    }
