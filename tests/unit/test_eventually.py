"""tests.support.eventually, the one polling helper of the suites."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.support import GiveUp, eventually, eventually_sync


async def test_it_returns_the_first_truthy_value_of_a_sync_or_async_check() -> None:
    counter = itertools.count()
    assert await eventually(lambda: next(counter) >= 3 and "done", every=0.001) == "done"

    calls: list[int] = []

    async def check() -> list[int] | None:
        calls.append(1)
        return calls if len(calls) == 3 else None

    assert await eventually(check, every=0.001) == [1, 1, 1]


async def test_assertion_errors_are_tried_again() -> None:
    calls = itertools.count(1)

    def check() -> int:
        n = next(calls)
        assert n >= 3, f"only {n}"
        return n

    assert await eventually(check, every=0.001) == 3


async def test_it_gives_up_after_within_with_the_message_and_the_last_value() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"^no luck: not true within 0\.2s; last value: \[\]$"):
        await eventually(list, within=0.2, every=0.01, message="no luck")
    assert time.monotonic() - started >= 0.2


async def test_the_last_assertion_error_is_in_the_timeout_and_a_message_can_be_lazy() -> None:
    log = ["first line"]

    def check() -> bool:
        log.append("tried")
        raise AssertionError(f"status running ({len(log) - 1})")

    with pytest.raises(AssertionError) as failed:
        await eventually(check, within=0.05, every=0.01, message=lambda: "\n".join(log))
    head, _, rest = str(failed.value).partition("\n")
    tries = len(log) - 1
    assert head == f"first line: not true within 0.05s; last error: status running ({tries})"
    assert rest == "\n".join(["tried"] * tries)  # read at the timeout, after the last try
    assert tries > 1
    assert isinstance(failed.value.__cause__, AssertionError)


async def test_give_up_and_other_errors_end_it_at_once() -> None:
    calls: list[int] = []

    def died() -> bool:
        calls.append(1)
        raise GiveUp("the process exited")

    with pytest.raises(GiveUp, match="the process exited"):
        await eventually(died, within=5)
    with pytest.raises(ZeroDivisionError):
        await eventually(lambda: 1 / 0, within=5)
    assert calls == [1]


def test_the_sync_twin_follows_the_same_rules() -> None:
    counter = itertools.count()
    assert eventually_sync(lambda: next(counter) == 2, every=0.001) is True
    with pytest.raises(AssertionError, match=r"^not true within 0\.05s; last value: 0$"):
        eventually_sync(lambda: 0, within=0.05, every=0.01)
    with pytest.raises(GiveUp):
        eventually_sync(lambda: (_ for _ in ()).throw(GiveUp("gone")), within=5)
