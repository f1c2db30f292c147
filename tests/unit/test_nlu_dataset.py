"""The analyser on the labelled requests in tests/data.

``nlu_requests.jsonl`` (264 requests, 22 per intent) is the acceptance set; the
cue table was refined while measuring on it. ``nlu_holdout.jsonl`` (48 requests)
was written after that tuning and never tuned on: its figure is the honest
estimate of accuracy on new phrasing, kept here as a regression floor.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from chatsys.domain.nlu import Intent, RuleBasedAnalyzer

DATA = Path(__file__).resolve().parents[1] / "data"


def load(name: str) -> list[tuple[str, Intent]]:
    rows = [json.loads(line) for line in (DATA / name).read_text().splitlines() if line]
    return [(r["text"], Intent(r["intent"])) for r in rows]


def report(rows: list[tuple[str, Intent]]) -> tuple[float, dict[Intent, tuple[float, float]]]:
    """Macro accuracy (mean per-intent recall) and per-intent (precision, recall)."""
    analyzer = RuleBasedAnalyzer()
    hit: Counter[Intent] = Counter()
    predicted: Counter[Intent] = Counter()
    actual: Counter[Intent] = Counter()
    for text, intent in rows:
        guess = analyzer.analyze(text).primary
        predicted[guess] += 1
        actual[intent] += 1
        hit[intent] += guess is intent
    per = {i: (hit[i] / predicted[i] if predicted[i] else 0.0, hit[i] / actual[i]) for i in actual}
    macro = sum(recall for _, recall in per.values()) / len(per)
    return macro, per


def show(title: str, macro: float, per: dict[Intent, tuple[float, float]]) -> str:
    lines = [f"{title}: macro accuracy {macro:.3f}"]
    lines += [f"  {i.value:<20} precision {p:.2f}  recall {r:.2f}" for i, (p, r) in per.items()]
    return "\n".join(lines)


def test_the_labelled_set_covers_every_intent_with_distinct_requests() -> None:
    rows = load("nlu_requests.jsonl")
    counts = Counter(intent for _, intent in rows)
    assert set(counts) == set(Intent)
    assert min(counts.values()) >= 20
    assert len({text for text, _ in rows}) == len(rows)


def test_macro_accuracy_on_the_labelled_set_is_at_least_90_percent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    macro, per = report(load("nlu_requests.jsonl"))
    with capsys.disabled():
        print("\n" + show("NLU labelled set (264)", macro, per))
    assert macro >= 0.90


def test_held_out_requests_do_not_regress(capsys: pytest.CaptureFixture[str]) -> None:
    macro, per = report(load("nlu_holdout.jsonl"))
    with capsys.disabled():
        print("\n" + show("NLU held-out set (48, never tuned on)", macro, per))
    assert macro >= 0.65
