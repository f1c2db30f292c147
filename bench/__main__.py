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
from pathlib import Path

from bench.access import run_access
from bench.chaos import run_chaos
from bench.mcp import run_mcp
from bench.pipeline import run_enqueue, run_step, run_submit
from bench.startup import ROOT, run_dev, run_startup, say
from bench.streaming import StreamingOptions, run_streaming
from bench.webhooks import run_webhooks
from chatsys.infra.db import migrations
from chatsys.infra.embedded.stack import EmbeddedStack

Table = dict[str, dict[str, float]]


def show(title: str, table: Table) -> None:
    columns = list(next(iter(table.values())))
    print(f"\n{title}")
    print(f"  {'metric':<34}" + "".join(f"{c:>12}" for c in columns))
    for metric, row in table.items():
        print(f"  {metric:<34}" + "".join(f"{row[c]:>12.3f}" for c in columns))


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
    "chaos",
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="startup: repetitions (median)")
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
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
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    wanted = set(SCENARIOS) if args.scenario == "all" else {args.scenario}

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
            if "startup" in wanted:
                table = run_startup(args.runs, db, rd)
                show(
                    f"startup (median of {args.runs}; ratio = chatsys / bare FastAPI + arq)", table
                )
                save("startup", table)
            if "submit" in wanted:
                table = run_submit(db, rd, total=args.requests, concurrency=args.concurrency)
                show("submit (ratio = POST /v1/tasks / bare FastAPI + one asyncpg INSERT)", table)
                save("submit", table)
            if "step" in wanted:
                table = run_step(db, runs=200)
                show("step (ratio = executor step / direct litellm.acompletion)", table)
                save("step", table)
            if "enqueue" in wanted:
                table = run_enqueue(rd, jobs=200)
                show("enqueue (ratio = chatsys worker settings / arq defaults)", table)
                save("enqueue", table)
            if "webhooks" in wanted:
                table = run_webhooks(db, rd, tasks=args.tasks)
                show("webhooks (ratio = chatsys worker / plain httpx client)", table)
                save("webhooks", table)
            if "streaming" in wanted:
                options = StreamingOptions(
                    subscribers=tuple(int(n) for n in args.subscribers.split(",") if n.strip()),
                    idle=args.idle,
                    fanout_rate=args.fanout_rate,
                )
                table = run_streaming(db, rd, options)
                show("streaming (ratio = chatsys / baseline; see bench/streaming.py)", table)
                save("streaming", table)
            if "access" in wanted:
                table = run_access(db, rd)
                show("access (ratio = with API key auth + rate limits / without)", table)
                save("access", table)
            if "chaos" in wanted:
                table = run_chaos(db, rd, rounds=args.rounds)
                show(f"chaos (x{args.rounds}; counts that must be 0, recovery in s)", table)
                save("chaos", table)
    if "dev" in wanted:
        table = run_dev()
        show("dev (ratio = warm / cold)", table)
        save("dev", table)
    say("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
