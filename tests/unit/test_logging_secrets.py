"""Tracebacks in the log never show frame locals (they can hold signing secrets)."""

from __future__ import annotations

import io
import re
import sys

import structlog

from chatsys.domain.webhooks.model import new_secret
from chatsys.infra.logging import _traceback_without_locals


def _sign_and_fail(secret: str) -> None:
    key = secret.removeprefix("whsec_")
    raise ValueError(f"boom after {len(key)} characters")


def test_a_logged_traceback_does_not_show_the_secret_in_its_locals() -> None:
    secret = new_secret()
    try:
        _sign_and_fail(secret)
    except ValueError:
        exc_info = sys.exc_info()
    assert secret[6:26] in _render(structlog.dev.RichTracebackFormatter(), exc_info)  # the risk
    text = _render(_traceback_without_locals(), exc_info)
    assert "_sign_and_fail" in text
    assert "boom after" in text
    assert secret[6:26] not in text


def _render(formatter: object, exc_info: object) -> str:
    out = io.StringIO()
    formatter(out, exc_info)  # type: ignore[operator]
    return re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())  # without colour codes
