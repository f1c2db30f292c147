"""``smoke``: the CI guard (issue 20): the hot paths at small counts, each against the
baseline of its own scenario measured in the same run, failing on a regression.

Parts, each the scenario of the same name with smaller counts (the code is theirs):

- ``submit``: ``POST /v1/tasks`` against a bare FastAPI endpoint doing one asyncpg
  INSERT (``bench/pipeline.py``), 200 requests x 3 alternating rounds, 16 in flight;
- ``step``: one plan step through the executor, with the no-op and with the durable
  SQL journal, against one direct ``litellm.acompletion`` stream (``bench/pipeline.py``),
  60 of each;
- ``runs``: one-step runs end to end, POST then SSE until ``task.succeeded``, on a real
  API and worker, against a bare FastAPI endpoint relaying the same fake model
  (``bench/runs.py``), 96 runs, 16 clients;
- ``fan-out``: one task's 60 events fanned out to 100 WebSocket subscribers against a
  bare uvicorn broadcaster sending the same frames at the same rate
  (``bench/streaming.py`` (b)).

Every guard is on a same-run ratio (chatsys / baseline), which carries over from one
machine to another and from a quiet moment to a busy one far better than seconds do.
A throughput ratio has a floor, a latency ratio a ceiling. A part with a ratio past
its bound is measured once more and each of its guards keeps the better of its two
ratios (a regression is past its bound both times; the noise of a shared machine
seldom is: the first CI rehearsal of this guard, load 0.9, had submit p50 at 3.003
against 3.0). A ratio still past its bound: the table is printed, then one ``FAIL``
line each, and ``python -m bench`` exits 1.

The bounds (the ``bound`` column), from four runs on this shared 2-core machine on
2026-12-03 (src at main 61ef4bc), the ratios seen, worst first, under the load averages
3.7, 2.9-4.9, 5.8-8.2 and 8.2-9.2 (other sessions' test suites and benches; the tables
are in ``bench/README.md``; the first run timed the step's three calls one after the
other, not in turn):

====================================  ===========================  =========  ========
guard                                 ratios seen                  bound      margin
====================================  ===========================  =========  ========
submit throughput                     0.558 0.615 0.822 0.987      >= 0.45    0.81x
submit p50                            3.129 3.003 | 2.461 1.926    <= 3.6     1.15x
step, no-op journal, p50              1.189 1.188 1.130 1.077      <= 1.45    1.22x
durable step p50                      2.463 2.440 2.279 2.171      <= 3.0     1.22x
fan-out server CPU per frame          2.286 2.105 (two runs)       <= 2.8     1.22x
run p50 (end to end)                  5.792 5.047 | 2.626 2.330    <= 7.2     1.24x
runs/s                                0.172 0.172 | 0.307 0.387    >= 0.14    0.81x
fan-out p50 delay                     8.499 4.633 | 4.092 3.868    <= 10.5    1.24x
====================================  ===========================  =========  ========

Each bound is the worst ratio seen with a margin of about 1.22-1.25x (a ceiling) or
0.8x (a floor): the noise seen passes. Submit p50 is the exception: it is higher on a
quiet machine than on a busy one (3.003 and 3.129 in the two CI rehearsals of
2026-12-03 at load 0.9, where the baseline's own p50 is 22-28 ms; 2.91 at 61ef4bc;
1.9-2.5 at load 3-9), so its bound is 3.6, from the quiet figures; a slowed commit
(20 ms per event append) also fails the fan-out delay guard. The first five barely
moved with the load, and a 40% regression of any of them (x1.4 on a latency or CPU
ratio from its typical value, x0.6 on throughput) lands past its bound. A commit
slowed by 20 ms of sleep per event append failed the submit p50 and fan-out p50
guards (``bench/README.md``).

The last three did move with the load (left of ``|``: load 5.8-9.2; right: 3.7-4.9):
chatsys' run is CPU-bound in its worker and goes through four processes,
the baseline's is bound by the model's latency in one, so a machine busy with other
work slows chatsys' side about twice as much. Their bounds come from the loaded runs,
so they catch a 40% regression only on a machine that loaded; on a quiet one they are
backstops against a doubling, and the CPU and step guards above cover the same paths
more tightly. Widen or tighten a bound only with new figures beside it here.

The parts' whole tables go to ``bench/results/smoke-parts.json``. The scenario took
2 min 42 s at load 3-5 and about 6 min at load 8-9 (runs: 57-76 s and 151-171 s).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.pipeline import run_step, run_submit
from bench.runs import RunsOptions, run_runs
from bench.startup import ROOT, say
from bench.streaming import StreamingOptions, run_streaming

Table = dict[str, dict[str, float]]


@dataclass(frozen=True, slots=True)
class Guard:
    part: str  # the part the figure comes from
    metric: str  # its row in that part's table
    bound: float  # on the ratio: a floor if higher is better, else a ceiling
    higher_is_better: bool

    @property
    def label(self) -> str:
        return f"{self.part}: {self.metric} {'>=' if self.higher_is_better else '<='}"

    def holds(self, ratio: float) -> bool:
        return ratio >= self.bound if self.higher_is_better else ratio <= self.bound


def floor(part: str, metric: str, bound: float) -> Guard:
    return Guard(part, metric, bound, higher_is_better=True)


def ceiling(part: str, metric: str, bound: float) -> Guard:
    return Guard(part, metric, bound, higher_is_better=False)


GUARDS = (  # bounds and the figures behind them: the module's docstring
    floor("submit", "throughput (req/s)", 0.45),
    ceiling("submit", "p50 latency (ms)", 3.6),
    ceiling("step", "one step, p50 (ms)", 1.45),
    ceiling("step", "durable step, p50 (ms)", 3.0),
    ceiling("fan-out", "(b) 100 subs: server CPU/frame (us)", 2.8),
    ceiling("runs", "run p50 (ms)", 7.2),
    floor("runs", "runs/s", 0.14),
    ceiling("fan-out", "(b) 100 subs: p50 delay (ms)", 10.5),
)
# Printed beside the guards, bound 0 (none): too noisy on a shared machine to fail on.
WATCHED = (
    ("runs", "added over the model p50 (ms)"),
    ("runs", "worker CPU per run (ms)"),
    ("step", "durable added per step, p50 (ms)"),
    ("fan-out", "(b) 100 subs: p99 delay (ms)"),
)
FANOUT = StreamingOptions(subscribers=(100,), idle=0, relay_rounds=0, fanout_tokens=60)


def run_smoke(database_url: str, redis_url: str) -> Table:
    db, rd = database_url, redis_url
    # The parts that start a worker come first: the tasks that submit leaves queued, and
    # the step's tasks claimed by no live worker, would be run (or resumed) by it.
    parts: dict[str, Callable[[], Table]] = {
        "runs": lambda: run_runs(db, rd, RunsOptions(runs=96, clients=16)),
        "fan-out": lambda: run_streaming(db, rd, FANOUT),
        "step": lambda: run_step(db, runs=60),
        "submit": lambda: run_submit(db, rd, total=200, concurrency=16, rounds=3),
    }
    started = time.perf_counter()
    tables = {}
    for name, part in parts.items():
        begun = time.perf_counter()
        tables[name] = part()
        say(f"smoke: {name} took {time.perf_counter() - begun:.0f} s")
    say(f"smoke: all parts took {time.perf_counter() - started:.0f} s")
    keep = ROOT / "bench" / "results"
    keep.mkdir(parents=True, exist_ok=True)
    (keep / "smoke-parts.json").write_text(json.dumps(tables, indent=2) + "\n")
    table: Table = {}
    for guard in GUARDS:
        row = tables[guard.part][guard.metric]
        table[guard.label] = {**row, "bound": guard.bound}
    again = sorted({g.part for g in GUARDS if not g.holds(table[g.label]["ratio"])})
    if again:  # once more: a regression is past its bound both times, noise seldom is
        say(f"smoke: {', '.join(again)}: past a bound, measured once more")
        retried = {name: parts[name]() for name in again}
        for guard in GUARDS:
            if guard.part in retried:
                second = retried[guard.part][guard.metric]
                if _better(guard, second["ratio"], table[guard.label]["ratio"]):
                    table[guard.label] = {**second, "bound": guard.bound}
    for source, metric in WATCHED:
        table[f"{source}: {metric}"] = {**tables[source][metric], "bound": 0.0}
    return table


def _better(guard: Guard, ratio: float, than: float) -> bool:
    return ratio > than if guard.higher_is_better else ratio < than


def failures(table: Table) -> list[str]:
    """One line per guard whose ratio is past its bound."""
    out = []
    for guard in GUARDS:
        ratio = table[guard.label]["ratio"]
        if not guard.holds(ratio):
            side = "below its floor" if guard.higher_is_better else "above its ceiling"
            out.append(f"{guard.label[:-3]}: ratio {ratio:.3f} {side} {guard.bound:g}")
    return out


__all__ = ["GUARDS", "failures", "run_smoke"]
