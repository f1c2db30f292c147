"""``python -m bench.compare --old REF``: the same scenarios on two commits, side by side.

Each commit runs its own ``python -m bench`` (its own bench code against its own
``src``, from a git worktree of REF made for the run), the two alternating round
by round so that the machine's drift falls on both. Printed per figure: the
median over the rounds on each commit and new / old. For figures that are already
ratios against a same-run baseline (``ratio`` column), new / old compares the
ratios, which cancels most of the machine's noise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.startup import ROOT, say

Table = dict[str, dict[str, float]]

SCENARIO_ARGS = {
    "submit": [],
    "step": [],
    "streaming": ["--subscribers", "1000", "--idle", "50"],
}


def _run(tree: Path, scenario: str, extra: list[str]) -> Table:
    env = dict(os.environ, PYTHONPATH=f"{tree / 'src'}:{tree}")
    command = [sys.executable, "-m", "bench", "--scenario", scenario, *extra]
    subprocess.run(command, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    table: Table = json.loads((tree / "bench" / "results" / f"{scenario}.json").read_text())
    return table


def _median(tables: list[Table], metric: str, column: str) -> float:
    return statistics.median(t[metric][column] for t in tables if metric in t)


def compare(old: Path, new: Path, scenarios: list[str], rounds: int) -> dict[str, Table]:
    results: dict[str, dict[str, list[Table]]] = {s: {"old": [], "new": []} for s in scenarios}
    for n in range(rounds):
        order = [("old", old), ("new", new)] if n % 2 == 0 else [("new", new), ("old", old)]
        for scenario in scenarios:
            for side, tree in order:
                say(f"round {n + 1}/{rounds}: {scenario} on the {side} commit")
                results[scenario][side].append(_run(tree, scenario, SCENARIO_ARGS[scenario]))
    report: dict[str, Table] = {}
    for scenario, sides in results.items():
        table: Table = {}
        for metric in sides["new"][0]:
            for column in ("chatsys", "ratio"):
                if column not in sides["new"][0][metric]:
                    continue
                before, after = (
                    _median(sides["old"], metric, column),
                    _median(sides["new"], metric, column),
                )
                if column == "ratio" and before == 0:
                    continue
                table[f"{metric} [{column}]"] = {
                    "old": before, "new": after, "new/old": after / before if before else 0.0,
                }  # fmt: skip
        report[scenario] = table
    return report


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("--old", required=True, help="the commit to compare with (a git ref)")
    parser.add_argument(
        "--new", default=None, help="a git ref, not the working tree (= --old: the noise)"
    )
    parser.add_argument("--scenarios", default="submit,step,streaming")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--requests", type=int, default=2000, help="submit: requests per measurement"
    )
    args = parser.parse_args()
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    SCENARIO_ARGS["submit"] = ["--requests", str(args.requests)]
    unknown = set(scenarios) - set(SCENARIO_ARGS)
    if unknown:
        parser.error(f"no comparison for {sorted(unknown)}; choose from {sorted(SCENARIO_ARGS)}")
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        git = shutil.which("git") or "git"
        subprocess.run([git, "worktree", "add", "--detach", "-q", str(old), args.old],
                       cwd=ROOT, check=True)  # fmt: skip
        new = ROOT
        if args.new is not None:
            new = Path(tmp) / "new"
            subprocess.run([git, "worktree", "add", "--detach", "-q", str(new), args.new],
                           cwd=ROOT, check=True)  # fmt: skip
        try:
            report = compare(old, new, scenarios, args.rounds)
        finally:
            for tree in {old, new} - {ROOT}:
                subprocess.run([git, "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                               check=False)  # fmt: skip
    for scenario, table in report.items():
        side = args.new or "this tree"
        print(f"\n{scenario} (median of {args.rounds} rounds; old = {args.old}, new = {side})")
        print(f"  {'metric':<48}{'old':>12}{'new':>12}{'new/old':>10}")
        for metric, row in table.items():
            print(f"  {metric:<48}{row['old']:>12.3f}{row['new']:>12.3f}{row['new/old']:>10.3f}")
    out = ROOT / "bench" / "results" / "compare.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
