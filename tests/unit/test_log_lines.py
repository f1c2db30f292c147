"""What an operator reads at INFO: people's requests, not the probes polling every few
seconds; uvicorn's lines once, without the colour-coded copy it passes along."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from chatsys.api.middleware import RequestContextMiddleware
from chatsys.infra.logging import configure_logging
from chatsys.infra.settings import Settings


@pytest.fixture
def log_output(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The process's log (stderr) as configured for ``chatsys api``, at INFO."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    configure_logging(Settings(log_level="INFO", log_format="json"), force=True)
    yield out
    monkeypatch.undo()
    configure_logging(Settings(), force=True)


async def test_probe_requests_are_not_logged_at_info(log_output: io.StringIO) -> None:
    async def answer(_: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = RequestContextMiddleware(
        Starlette(
            routes=[Route("/readyz", answer), Route("/healthz", answer), Route("/v1/x", answer)]
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for path in ("/readyz", "/healthz", "/readyz", "/v1/x"):
            assert (await client.get(path)).status_code == 200

    lines = [line for line in log_output.getvalue().splitlines() if "chatsys.api.request" in line]
    assert len(lines) == 1
    assert '"path": "/v1/x"' in lines[0]


def test_uvicorn_lines_carry_no_colour_coded_copy(
    log_output: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    uvicorn_error = logging.getLogger("uvicorn.error")
    # An in-process uvicorn started by another test may have set its level (log_level=).
    monkeypatch.setattr(uvicorn_error, "level", logging.INFO)
    monkeypatch.setattr(uvicorn_error, "disabled", False)
    uvicorn_error.info(
        "Finished server process [%d]",
        42,
        extra={"color_message": "Finished server process [\x1b[36m%d\x1b[0m]"},
    )

    text = log_output.getvalue()
    assert "Finished server process [42]" in text
    assert "color_message" not in text
    assert "\\u001b" not in text
