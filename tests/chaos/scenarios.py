"""The chaos scenarios on processes: workers SIGKILLed mid-task, an API process
SIGKILLed under its SSE clients, webhook receivers that hang or refuse while new tasks
run. Each runs ``rounds`` times on one :class:`ChaosStack` and returns an
:class:`Outcome` (the tests assert on it; ``python -m bench --scenario chaos`` prints it).
The outages of Redis and Postgres are in ``tests/chaos/outages.py``."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

from tests.chaos.audit import Audit, audit
from tests.chaos.stack import ChaosStack, Followed, pacing, ts
from tests.fakes.openai_compat import RunningFake
from tests.support import eventually, free_port
from tests.webhook_receiver import Receiver


@dataclass
class Ctx:
    database_url: str  # migrated
    redis_url: str
    llm: RunningFake
    workdir: Path


@dataclass
class Outcome:
    scenario: str
    rounds: int
    audit: Audit
    resume: list[float] = field(default_factory=list)  # SIGKILL -> next run elsewhere (s)
    recovered: list[float] = field(default_factory=list)  # server back -> all ended (s)
    answers: Counter[int] = field(default_factory=Counter)  # statuses during an outage
    problems: list[str] = field(default_factory=list)  # the scenario's own checks
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        text = f"{self.scenario} x{self.rounds}: {self.audit.line()}"
        if self.resume:
            text += (f"; kill-to-resume p50 {statistics.median(self.resume):.2f} s, "
                     f"max {max(self.resume):.2f} s")  # fmt: skip
        if self.recovered:
            text += f"; all ended {max(self.recovered):.1f} s after the server returned (max)"
        if self.answers:
            text += f"; answers meanwhile {dict(sorted(self.answers.items()))}"
        return "\n  ".join([text, *self.notes, *self.problems])


def marker(scenario: str, n: int) -> str:
    return f"{scenario} {n} {uuid4().hex[:8]}"


async def completed(stack: ChaosStack, task_id: str) -> int:
    return len(await stack.of_type(task_id, "step.completed"))


async def requeue_reasons(stack: ChaosStack) -> Counter[str]:
    reasons: Counter[str] = Counter()
    for task_id in stack.ids:
        for event in await stack.of_type(task_id, "task.requeued"):
            reasons[str(event["data"].get("reason"))] += 1
    return reasons


async def finish(stack: ChaosStack, followers: list[asyncio.Task[Followed]], out: Outcome) -> None:
    """Wait for every task and stream to end; then the common checks."""
    try:
        await eventually(stack.all_ended, within=120, every=0.2, message="tasks ending")
    except AssertionError as exc:
        out.problems.append(str(exc).splitlines()[0])
    done, pending = await asyncio.wait(followers, timeout=60) if followers else (set(), set())
    for task in pending:
        task.cancel()
    streams = [t.result() for t in done if t.exception() is None]
    out.problems += [f"a stream client failed: {t.exception()!r}" for t in done if t.exception()]
    out.problems += [f"a stream client never ended ({len(pending)})"] if pending else []
    out.problems += stack.exits()
    out.audit = await audit(stack, streams)
    for log in stack.procs:
        if "Traceback" in log.log.read_text(errors="replace"):
            out.problems.append(f"{log.name}: a traceback in its log")


async def worker_kills(ctx: Ctx, rounds: int = 5) -> Outcome:
    """Per round: a task on the stack; once a step of it completed, its runner is
    SIGKILLed; the time until it starts again on the other worker is measured; a new
    worker takes the dead one's place, and the task ends before the next round."""
    out = Outcome("worker SIGKILL", rounds, Audit())
    followers: list[asyncio.Task[Followed]] = []
    with pacing(ctx.llm, latency=0.6, chunk_delay=0.0):
        async with ChaosStack("worker-kill", ctx.database_url, ctx.redis_url, ctx.llm,
                              ctx.workdir) as stack:  # fmt: skip
            for n in range(rounds):
                await stack.wait_workers(2)
                task_id = (await stack.submit(marker("kill", n), api=n % 2))["id"]
                followers.append(asyncio.create_task(stack.follow(task_id, prefer=n)))

                async def one_step_done(task_id: str = task_id) -> bool:
                    return await completed(stack, task_id) >= 1

                await eventually(one_step_done, within=60, every=0.05, message="a step done")
                started = (await stack.of_type(task_id, "task.started"))[-1]
                pid = int(started["data"]["worker"].split(":")[1])  # host:pid:nonce
                runner = next((w for w in stack.workers if w.popen.pid == pid), None)
                if runner is None:
                    out.problems.append(f"round {n}: runner {pid} is none of the workers")
                    continue
                killed = stack.kill(runner)

                async def resumed(task_id: str = task_id) -> bool:
                    return len(await stack.of_type(task_id, "task.started")) >= 2

                await eventually(resumed, within=60, every=0.05, message="resumed")
                out.resume.append(time.monotonic() - killed)
                stack.replace_worker(runner)
                # Each kill meets one task: the next round starts once this one ended (a
                # worker that comes back fast would otherwise be running it still when
                # the next round kills it, and both would be re-queued).
                await asyncio.wait([followers[-1]], timeout=60)
            await finish(stack, followers, out)
            reasons = await requeue_reasons(stack)
    if reasons != Counter({"worker died": rounds}):
        out.problems.append(f"requeue reasons {dict(reasons)}, not one 'worker died' per kill")
    return out


async def api_kills(ctx: Ctx, rounds: int = 1, clients: int = 10) -> Outcome:
    """Per round: ``clients`` SSE clients follow tasks on API process 2, which is
    SIGKILLed mid-stream; each client resumes on API process 1 with Last-Event-ID."""
    out = Outcome("API SIGKILL, SSE clients", rounds, Audit())
    followers: list[asyncio.Task[Followed]] = []
    with pacing(ctx.llm, latency=0.05, chunk_delay=0.04):
        async with ChaosStack("api-kill", ctx.database_url, ctx.redis_url, ctx.llm,
                              ctx.workdir) as stack:  # fmt: skip
            for n in range(rounds):
                ids = [(await stack.submit(marker("api", n)))["id"] for _ in range(clients // 2)]
                reads = [Followed(task_id) for task_id in ids for _ in range(2)]
                these = [asyncio.create_task(stack.follow(r.task_id, prefer=1, into=r))
                         for r in reads]  # fmt: skip
                followers += these

                async def all_reading(reads: list[Followed] = reads) -> bool:
                    return all(len(r.events) >= 3 for r in reads)

                await eventually(all_reading, within=60, every=0.02, message="clients reading")
                victim = stack.apis[1]
                stack.kill(victim)
                await asyncio.wait(these, timeout=60)
                moved = sum(1 for r in reads if r.reconnects)
                if moved != len(reads):
                    out.problems.append(f"round {n}: {moved} of {len(reads)} clients resumed")
                await stack.replace_api(victim)
            await finish(stack, followers, out)
    out.notes.append(f"{rounds * (clients // 2) * 2} SSE clients moved to the other process")
    return out


async def webhook_backlog(ctx: Ctx, rounds: int = 1, backlog: int = 30, fresh: int = 5) -> Outcome:
    """Endpoints that hang (accept, never answer) and one on a closed port get a
    delivery for every task ending; with ``backlog`` such tasks ended, ``fresh`` new
    tasks still start at once and finish, against the same count measured first with
    no backlog."""
    out = Outcome("hanging + closed webhooks", rounds, Audit())
    hanging = await Receiver(hang=True).start()
    closed = f"http://127.0.0.1:{free_port()}/hook"
    try:
        with pacing(ctx.llm, latency=0.02, chunk_delay=0.0):
            async with ChaosStack("webhooks", ctx.database_url, ctx.redis_url, ctx.llm,
                                  ctx.workdir) as stack:  # fmt: skip
                for url in (f"{hanging.url}/hook", closed):
                    made = await stack.clients[0].post("/v1/webhooks", json={"url": url})
                    assert made.status_code == 201, made.text
                    stack.secrets.add(made.json()["secret"])
                before = await _fresh_tasks(stack, "before", fresh)
                lags: list[float] = []
                for n in range(rounds):
                    for i in range(backlog):
                        hook = f"{hanging.url}/task" if i % 2 else closed
                        await stack.submit(marker("backlog", n), api=i % 2, webhook_url=hook)
                    await eventually(stack.all_ended, within=120, every=0.2, message="backlog")
                    lags += await _fresh_tasks(stack, f"fresh {n}", fresh, out)
                if not hanging.received:
                    out.problems.append("no delivery reached the hanging receiver")
                await hanging.stop()  # lets the hung attempts go before the workers stop
                await finish(stack, [], out)
    finally:
        await hanging.stop()
    out.notes.append(
        f"enqueue-to-start p50 {statistics.median(before):.2f} s with no backlog, "
        f"{statistics.median(lags):.2f} s (max {max(lags):.2f} s) with "
        f"{backlog} tasks' deliveries to hanging/closed receivers; "
        f"{len(hanging.received)} requests reached the hanging receiver"
    )
    return out


async def _fresh_tasks(
    stack: ChaosStack, label: str, count: int, out: Outcome | None = None
) -> list[float]:
    """``count`` new tasks at once; each must end within 30 s and start within 5 s of
    its submission (the issue: behind a backlog they waited minutes). Start lags (s)."""
    posted = time.monotonic()
    ids = [(await stack.submit(marker(label, i), api=i % 2))["id"] for i in range(count)]
    try:
        await eventually(lambda: stack.all_ended(ids), within=30, every=0.1, message=label)
    except AssertionError:
        if out is not None:
            out.problems.append(f"{label}: tasks not ended within 30 s of their POST")
    lags = []
    for task_id in ids:
        events = await stack.events(task_id)
        created = next(e for e in events if e["type"] == "task.created")
        started = [e for e in events if e["type"] == "task.started"]
        lags.append(ts(started[0]) - ts(created) if started else time.monotonic() - posted)
    if out is not None and max(lags) > 5:
        out.problems.append(f"{label}: a task started {max(lags):.1f} s after its POST")
    return lags
