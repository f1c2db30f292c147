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

from bench.startup import ROOT, run_dev, run_startup, say
from chatsys.infra.db import migrations
from chatsys.infra.embedded import EmbeddedStack

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


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="repetitions per scenario (median)")
    parser.add_argument("--scenario", choices=["startup", "dev", "all"], default="all")
    args = parser.parse_args()

    if args.scenario in ("startup", "all"):
        with (
            tempfile.TemporaryDirectory() as tmp,
            EmbeddedStack(
                Path(tmp),
                database_url=os.environ.get("CHATSYS_BENCH_DATABASE_URL") or None,
                redis_url=os.environ.get("CHATSYS_BENCH_REDIS_URL") or None,
            ) as servers,
        ):
            migrations.upgrade(servers.database_url)
            table = run_startup(args.runs, servers.database_url, servers.redis_url)
        show(f"startup (median of {args.runs}; ratio = chatsys / bare FastAPI + arq)", table)
        save("startup", table)
    if args.scenario in ("dev", "all"):
        table = run_dev()
        show("dev (ratio = warm / cold)", table)
        save("dev", table)
    say("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
