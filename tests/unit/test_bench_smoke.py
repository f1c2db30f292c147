"""The smoke guard's verdict: a floor fails below it, a ceiling above it, a bound itself passes."""

from __future__ import annotations

from bench.smoke import GUARDS, failures


def _table(ratios: dict[str, float]) -> dict[str, dict[str, float]]:
    return {
        g.label: {"chatsys": 0.0, "baseline": 0.0, "ratio": ratios.get(g.label, g.bound),
                  "bound": g.bound}
        for g in GUARDS
    }  # fmt: skip


def test_every_ratio_at_its_bound_passes() -> None:
    assert failures(_table({})) == []


def test_a_ratio_past_its_bound_fails_with_one_line_each() -> None:
    low = next(g for g in GUARDS if g.higher_is_better)
    high = next(g for g in GUARDS if not g.higher_is_better)
    lines = failures(_table({low.label: low.bound * 0.99, high.label: high.bound * 1.01}))
    assert len(lines) == 2
    assert lines[0].startswith(f"{low.part}: {low.metric}: ratio")
    assert "below its floor" in lines[0]
    assert lines[1].startswith(f"{high.part}: {high.metric}: ratio")
    assert "above its ceiling" in lines[1]


def test_better_than_the_bound_passes() -> None:
    better = {g.label: g.bound * (2.0 if g.higher_is_better else 0.5) for g in GUARDS}
    assert failures(_table(better)) == []
