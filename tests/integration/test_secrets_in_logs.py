"""Inserts that fail log no secret: a refused webhook (its whsec_ secret), a refused API
key (its hash), a refused task (the user's input, a secret in it, the task's webhook
secret), on a database whose URL carries its password when it has one (the embedded Postgres does).
Postgres quotes the refused row in its error (``DETAIL: Failing row contains (...)``),
which the unhandled-error line logs with its traceback; the log is grepped for every one
of those values."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from chatsys.bootstrap import build_app
from chatsys.infra.logging import configure_logging
from chatsys.infra.settings import (
    AuthSettings,
    DatabaseSettings,
    Environment,
    LimitSettings,
    RedisSettings,
    Settings,
    WebhookSettings,
)
from tests.support import plain_dsn

SECRET_INPUT = "deploy with csk_AbCdEfGhIjKl_" + "q" * 40 + " and password=hunter2-xyz"
LEAKS = {
    "a webhook secret": re.compile(r"whsec_(?!\*\*\*)"),
    "an API key": re.compile(r"csk_\w{12}_(?!\*\*\*)"),
    "a key hash": re.compile(r"\b[0-9a-f]{64}\b"),
    "the task input": re.compile(r"hunter2|deploy with"),
}


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment=Environment.TEST,
        data_dir=tmp_path / "data",
        log_format="json",
        database=DatabaseSettings(url=SecretStr(database_url)),
        redis=RedisSettings(url=SecretStr(redis_url)),
        webhooks=WebhookSettings(allow_private_networks=True),
        auth=AuthSettings(enabled=False),
        limits=LimitSettings(enabled=False),
    )


@pytest.fixture
async def logged(
    settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, io.StringIO]]:
    """The API, logging as a server process does into a buffer, on a database that
    refuses every new webhook, key and task."""
    connection = await asyncpg.connect(plain_dsn(database_url))
    try:
        for table in ("webhook_endpoints", "api_keys", "tasks"):
            await connection.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT ck_{table}_refuses CHECK (false) NOT VALID"
            )
    finally:
        await connection.close()
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    configure_logging(settings, force=True)
    app = build_app(settings)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client, out
    finally:
        monkeypatch.undo()
        configure_logging(Settings(), force=True)


async def test_refused_inserts_log_no_secret(
    logged: tuple[httpx.AsyncClient, io.StringIO], database_url: str
) -> None:
    password = make_url(database_url).password
    leaks = dict(LEAKS)
    if password:  # the embedded Postgres has one; a server with trust auth (CI's second run) none
        leaks["the database password"] = re.compile(re.escape(str(password)))
    client, out = logged
    refused = [
        await client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}),
        await client.post("/v1/api-keys", json={"name": "ci", "role": "member"}),
        await client.post(
            "/v1/tasks", json={"input": SECRET_INPUT, "webhook_url": "http://127.0.0.1:9/t"}
        ),
    ]
    assert [r.status_code for r in refused] == [500, 500, 500]

    text = out.getvalue()
    failures = [line for line in text.splitlines() if "chatsys.api.unhandled_error" in line]
    assert len(failures) == 3
    for line in failures:  # the row was in the error, and its values were masked
        assert "violates check constraint" in line
        assert "Failing row contains ***" in line
    hits = {what: len(pattern.findall(text)) for what, pattern in leaks.items()}
    print(f"secret grep over {len(text.splitlines())} log lines: {hits}")
    assert hits == dict.fromkeys(leaks, 0)
