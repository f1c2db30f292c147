"""Secrets stay out of the log: tracebacks never show frame locals (they can hold
signing secrets), and uvicorn's lines never carry a query string (a stream ticket)."""

from __future__ import annotations

import io
import logging
import re
import sys

import structlog

from chatsys.domain.webhooks.model import new_secret
from chatsys.infra.logging import NoQueryStrings, _traceback_without_locals


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


def _uvicorn_record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, "uvicorn", 1, msg, args, None)


def test_uvicorn_lines_lose_their_query_strings() -> None:
    keep = NoQueryStrings()
    handshake = _uvicorn_record(
        "uvicorn.error", '%s - "WebSocket %s" [accepted]', "127.0.0.1:5", "/v1/ws?ticket=cst_x"
    )
    assert not keep.filter(handshake)  # chatsys logs the connection itself, by path
    access = _uvicorn_record(
        "uvicorn.access",
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5",
        "GET",
        "/v1/tasks/1/events?ticket=cst_x",
        "1.1",
        200,
    )
    assert keep.filter(access)
    assert access.getMessage() == '127.0.0.1:5 - "GET /v1/tasks/1/events HTTP/1.1" 200'
    started = _uvicorn_record("uvicorn.error", "Uvicorn running on %s (Press CTRL+C)", "http://x")
    assert keep.filter(started)
    assert started.getMessage() == "Uvicorn running on http://x (Press CTRL+C)"
