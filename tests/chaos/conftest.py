"""Fixtures of the chaos suite, and its summary: each scenario's figures and the secret
grep of every process log (lines scanned, hits), printed at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.scenarios import Ctx
from tests.chaos.stack import GREPS, OUTCOMES
from tests.fakes.openai_compat import RunningFake, run_fake_openai


@pytest.fixture
def llm() -> Iterator[RunningFake]:
    with run_fake_openai() as running:
        yield running


@pytest.fixture
def ctx(database_url: str, redis_url: str, llm: RunningFake, tmp_path: Path) -> Ctx:
    return Ctx(database_url, redis_url, llm, tmp_path)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not GREPS and not OUTCOMES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("chaos scenarios")
    for line in OUTCOMES:
        write(line)
    terminalreporter.section("secret grep over every process log")
    write(f"{'scenario':<14}{'log':<34}{'lines':>8}{'hits':>6}  by kind")
    for grep in GREPS:
        hits = sum(grep.hits.values())
        kinds = ", ".join(f"{k} {v}" for k, v in grep.hits.items() if v) or "-"
        write(f"{grep.scenario:<14}{grep.log:<34}{grep.lines:>8}{hits:>6}  {kinds}")
    total = sum(sum(g.hits.values()) for g in GREPS)
    write(f"{len(GREPS)} logs, {sum(g.lines for g in GREPS)} lines scanned, {total} hits")
