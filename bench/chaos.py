"""``chaos``: the scenarios of the chaos suite (``tests/chaos``), each ``rounds`` times on
one stack of real processes (two ``chatsys api``, two ``chatsys worker``, the fake
provider): workers SIGKILLed mid-task, Redis SIGKILLed and restarted, Postgres stopped
and restarted, an API process SIGKILLed under its SSE clients, webhook receivers that
hang or refuse while new tasks run.

Not a ratio against a baseline: what it prints are counts that must be zero (lost tasks,
completed steps run again, stream events duplicated or missed, secrets in the logs,
failed checks) and the recovery figures of the issue (kill-to-resume p50 <= 5 s over 20
kills; every task ended within 15 s of Redis returning; the 503s answered meanwhile).
Rounds are short: Redis is away 2 s and Postgres 3 s per round (the suite: 4 s and 10 s).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import redis

from bench.pipeline import Table, percentile
from bench.startup import say
from tests.chaos.outages import postgres_stop, redis_restart
from tests.chaos.scenarios import Ctx, Outcome, api_kills, webhook_backlog, worker_kills
from tests.fakes.openai_compat import run_fake_openai

Scenario = Callable[[Ctx, int], Coroutine[Any, Any, Outcome]]
SCENARIOS: dict[str, Scenario] = {
    "worker SIGKILL": lambda ctx, n: worker_kills(ctx, rounds=n),
    "Redis SIGKILL 2 s": lambda ctx, n: redis_restart(ctx, rounds=n, down=2.0),
    "Postgres stop 3 s": lambda ctx, n: postgres_stop(ctx, rounds=n, down=3.0),
    "API SIGKILL, 10 SSE clients": lambda ctx, n: api_kills(ctx, rounds=n, clients=10),
    "hanging + closed webhooks": lambda ctx, n: webhook_backlog(ctx, rounds=n, backlog=10, fresh=3),
}


def _row(out: Outcome) -> dict[str, float]:
    a = out.audit
    resume = out.resume or [float("nan")]
    return {
        "rounds": out.rounds,
        "tasks": a.tasks,
        "lost": a.lost + a.not_ended,
        "re-run": a.steps_rerun,
        "dup/missed": a.duplicates + a.missed,
        "secrets": a.secret_hits,
        "resume p50": statistics.median(resume),
        "resume p95": percentile(resume, 95),
        "terminal s": max(out.recovered) if out.recovered else float("nan"),
        "503s": out.answers.get(503, 0),
        "problems": len(out.problems) + a.not_succeeded + a.gaps,
    }


def run_chaos(database_url: str, redis_url: str, *, rounds: int) -> Table:
    """Every scenario on the given (migrated) database; Redis is flushed between them
    (the previous stack has stopped); the outage scenarios start servers of their own."""
    table: Table = {}
    with tempfile.TemporaryDirectory() as tmp, run_fake_openai() as llm:
        for index, (name, scenario) in enumerate(SCENARIOS.items()):
            say(f"chaos: {name} x{rounds}")
            redis.Redis.from_url(redis_url).flushdb()
            ctx = Ctx(database_url, redis_url, llm, Path(tmp) / f"s{index}")
            out = asyncio.run(scenario(ctx, rounds))
            say(out.line())
            table[name] = _row(out)
    return table
