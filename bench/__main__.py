"""``python -m bench``: run the benchmark scenarios and print each figure beside its baseline.

Every scenario measures chatsys and a baseline in the same run, on this machine,
and prints their ratio (chatsys / baseline): a ratio is comparable across
machines where absolute seconds are not. Servers: Postgres and Redis embedded
from the pip wheels in a temporary folder, or the ones named by
``CHATSYS_BENCH_DATABASE_URL`` / ``CHATSYS_BENCH_REDIS_URL``. Results are also
written to ``bench/results/<scenario>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.access import run_access
from bench.backlog import run_backlog
from bench.chaos import run_chaos
from bench.idle import run_idle
from bench.mcp import run_mcp
from bench.pipeline import run_enqueue, run_step, run_submit
from bench.priority import run_priority
from bench.runs import RunsOptions, run_runs
from bench.smoke import failures as smoke_failures
from bench.smoke import run_smoke
from bench.startup import ROOT, run_dev, run_startup, say
from bench.streaming import StreamingOptions, run_streaming
from bench.webhooks import run_webhooks
from chatsys.infra.db import migrations
from chatsys.infra.embedded.stack import EmbeddedStack

Table = dict[str, dict[str, float]]


def show(title: str, table: Table) -> None:
    columns = list(next(iter(table.values())))
    width = max(34, *(len(metric) for metric in table))
    print(f"\n{title}")
    print(f"  {'metric':<{width}}" + "".join(f"{c:>12}" for c in columns))
    for metric, row in table.items():
        print(f"  {metric:<{width}}" + "".join(f"{row[c]:>12.3f}" for c in columns))


def save(name: str, table: Table) -> None:
    folder = ROOT / "bench" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(table, indent=2) + "\n")


SCENARIOS = (
    "startup",
    "submit",
    "step",
    "enqueue",
    "webhooks",
    "streaming",
    "access",
    "mcp",
    "dev",
    "backlog",
    "priority",
    "runs",
    "chaos",
    "idle",
)
# Not part of "all": each runs the others' code at small counts, and fails on a bound.
CHECKED: dict[str, Callable[[Table], list[str]]] = {"smoke": smoke_failures}  # issue 20
ISOLATION: dict[str, tuple[str, Callable[[str, str], Table]]] = {  # issue 14
    "backlog": ("ratio = 10,000 deliveries pending / none", run_backlog),
    "priority": ("ratio = 500 low tasks queued / workers idle", run_priority),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="startup: repetitions (median)")
    parser.add_argument("--scenario", choices=[*SCENARIOS, *CHECKED, "all"], default="all")
    parser.add_argument("--rounds", type=int, default=20, help="chaos: rounds of each scenario")
    parser.add_argument("--requests", type=int, default=2000, help="submit: requests")
    parser.add_argument("--concurrency", type=int, default=16, help="submit: in flight")
    parser.add_argument("--tasks", type=int, default=1000, help="webhooks: tasks ending at once")
    parser.add_argument(
        "--subscribers",
        default="1,100,1000",
        help="streaming: fan-out subscriber counts, comma-separated",
    )
    parser.add_argument("--idle", type=int, default=1000, help="streaming: idle connections")
    parser.add_argument(
        "--fanout-rate", type=float, default=20.0, help="streaming: tokens/s of the fan-out task"
    )
    parser.add_argument("--n", type=int, default=1000, help="runs: one-step runs per system")
    parser.add_argument("--clients", type=int, default=16, help="runs: clients at once")
    parser.add_argument(
        "--keepalive", type=float, default=15.0, help="runs: CHATSYS_STREAM_KEEPALIVE (s)"
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=60.0, help="idle: seconds the dev stack is measured"
    )
    return parser.parse_args()


def _on_servers(args: argparse.Namespace) -> dict[str, tuple[str, Callable[[str, str], Table]]]:
    """The scenarios that need Postgres and Redis, in the order they run: name -> (the
    ratio's meaning, a run on the database and Redis URLs)."""
    streaming = StreamingOptions(
        subscribers=tuple(int(n) for n in args.subscribers.split(",") if n.strip()),
        idle=args.idle,
        fanout_rate=args.fanout_rate,
    )
    runs = RunsOptions(runs=args.n, clients=args.clients, keepalive=args.keepalive)
    return {
        "startup": (
            f"median of {args.runs}; ratio = chatsys / bare FastAPI + arq",
            lambda db, rd: run_startup(args.runs, db, rd),
        ),
        "submit": (
            "ratio = POST /v1/tasks / bare FastAPI + one asyncpg INSERT",
            lambda db, rd: run_submit(db, rd, total=args.requests, concurrency=args.concurrency),
        ),
        "step": (
            "ratio = executor step / direct litellm.acompletion",
            lambda db, rd: run_step(db, runs=200),
        ),
        "enqueue": (
            "ratio = chatsys worker settings / arq defaults",
            lambda db, rd: run_enqueue(rd, jobs=200),
        ),
        "webhooks": (
            "ratio = chatsys worker / plain httpx client",
            lambda db, rd: run_webhooks(db, rd, tasks=args.tasks),
        ),
        "streaming": (
            "ratio = chatsys / baseline; see bench/streaming.py",
            lambda db, rd: run_streaming(db, rd, streaming),
        ),
        **ISOLATION,
        "access": (
            "ratio = with API key auth + rate limits / without",
            run_access,
        ),
        "runs": (
            "one-step run end to end / bare FastAPI calling the model",
            lambda db, rd: run_runs(db, rd, runs),
        ),
        "chaos": (
            f"x{args.rounds}; counts that must be 0, recovery in s",
            lambda db, rd: run_chaos(db, rd, rounds=args.rounds),
        ),
        "smoke": (
            "the CI guard; ratio = chatsys / its part's baseline; see bench/smoke.py",
            run_smoke,
        ),
        "idle": (
            f"idle dev stack over {args.idle_seconds:g}s; worker start, median of {args.runs}",
            lambda db, rd: run_idle(db, rd, seconds=args.idle_seconds, runs=args.runs),
        ),
    }


def main() -> int:
    args = parse_args()
    wanted = set(SCENARIOS) if args.scenario == "all" else {args.scenario}
    failed: list[str] = []

    if "mcp" in wanted:  # needs no database
        table = run_mcp()
        show("mcp (ratio = through the manager / direct ClientSession.call_tool)", table)
        save("mcp", table)
    if wanted - {"dev", "mcp"}:
        with (
            tempfile.TemporaryDirectory() as tmp,
            EmbeddedStack(
                Path(tmp),
                database_url=os.environ.get("CHATSYS_BENCH_DATABASE_URL") or None,
                redis_url=os.environ.get("CHATSYS_BENCH_REDIS_URL") or None,
            ) as servers,
        ):
            migrations.upgrade(servers.database_url)
            db, rd = servers.database_url, servers.redis_url
            for name, (title, run) in _on_servers(args).items():
                if name in wanted:
                    show(f"{name} ({title})", table := run(db, rd))
                    save(name, table)
                    if name in CHECKED:
                        failed += CHECKED[name](table)
    if "dev" in wanted:
        table = run_dev()
        show("dev (ratio = warm / cold)", table)
        save("dev", table)
    for line in failed:
        print(f"FAIL {line}")
    say("done" if not failed else f"{len(failed)} bound(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
