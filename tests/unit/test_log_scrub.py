"""No secret reaches the log, whoever logs it: the scrubber on its own, then the whole
pipeline (structlog events with nested fields, stdlib loggers of the libraries,
exceptions and their tracebacks, both formats)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest
import structlog
from pydantic import SecretStr

from chatsys.domain.access.model import new_key
from chatsys.domain.webhooks.model import new_secret
from chatsys.infra.log_scrub import SecretScrubber, configured_secrets
from chatsys.infra.logging import configure_logging
from chatsys.infra.settings import DatabaseSettings, LLMSettings, RedisSettings, Settings

KEY = "csk_AbCdEfGhIjKl_" + "x" * 40
TICKET = "cst_Zm9vYmFyYmF6cXV4cXV1eHh5enp5"
PROVIDER_KEY = "sk-proj-Q8bD1f2a9s7e6r5t"  # configured, matches no pattern of its own


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f"key {KEY} used", "key csk_AbCdEfGhIjKl_*** used"),
        (f"ticket={TICKET}", "ticket=cst_***"),
        ("whsec_MTIzNDU2Nzg5MGFiY2RlZg== rotated", "whsec_*** rotated"),
        ("postgresql+asyncpg://chatsys:pw%40x@db:5432/app", "postgresql+asyncpg://chatsys:***@db:5432/app"),
        ("redis://:hunter22@cache:6379/0", "redis://:***@cache:6379/0"),
        ("Authorization: Bearer abcdefgh12345678", "Authorization: ***"),
        ("sent 'Basic dXNlcjpwYXNzd29yZA=='", "sent 'Basic ***'"),
        ('{"h": {"authorization": "Bearer abc.def.ghi"}}', '{"h": {"authorization": "***"}}'),
        ("host=db password=s3cret! dbname=x", "host=db password=*** dbname=x"),
        ('"api_key": "abc123"', '"api_key": "***"'),
        ("Failing row contains (1, whsec_x, my input).", "Failing row contains ***"),
        ("Key (name)=(top secret) already exists.", "Key (name)=(***) already exists."),
        (f"calling with {PROVIDER_KEY}!", "calling with ***!"),
    ],
)  # fmt: skip
def test_the_scrubber_masks_each_kind_of_secret(line: str, expected: str) -> None:
    assert SecretScrubber([PROVIDER_KEY])(line) == expected


def test_colour_codes_inside_a_secret_do_not_hide_it() -> None:
    coloured = "cannot reach redis:\x1b[35m/\x1b[0m\x1b[35m/\x1b[0m:hunter22@cach\x1b[1;92me:6379"
    assert SecretScrubber()(coloured) == "cannot reach redis://:***@cache:6379"
    plain_colours = "\x1b[1mchatsys.api.request\x1b[0m status=\x1b[35m200\x1b[0m"
    assert SecretScrubber()(plain_colours) == plain_colours  # nothing to mask: colours stay


@pytest.mark.parametrize(
    "line",
    [
        '{"event": "chatsys.api.request", "method": "GET", "path": "/v1/tasks", "status": 200}',
        "Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)",
        'www-authenticate: Bearer realm="chatsys"',
        '{"has_password": true, "password": null, "api_key": 12}',
        "the csk_... key and whsec_... secrets",
    ],
)
def test_the_scrubber_leaves_ordinary_lines_alone(line: str) -> None:
    assert SecretScrubber([PROVIDER_KEY, "short"])(line) == line


def test_configured_secrets_are_the_secret_settings_and_url_passwords() -> None:
    settings = Settings(
        database=DatabaseSettings(url=SecretStr("postgresql+asyncpg://u:p%40ss-word@db/x")),
        redis=RedisSettings(url=SecretStr("redis://cache:6379/0")),
        llm=LLMSettings(api_key=SecretStr(PROVIDER_KEY)),
    )
    found = set(configured_secrets(settings))
    assert found == {"p%40ss-word", "p@ss-word", PROVIDER_KEY}


@pytest.fixture(params=["json", "console"])
def log_output(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[io.StringIO]:
    """The process's log (stderr), configured as a server process would be, with a
    provider key and a database password in its settings."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    settings = Settings(
        log_level="INFO",
        log_format=request.param,
        database=DatabaseSettings(url=SecretStr("postgresql+asyncpg://chatsys:Db-Pa55word@db/x")),
        llm=LLMSettings(api_key=SecretStr(PROVIDER_KEY)),
    )
    configure_logging(settings, force=True)
    yield out
    monkeypatch.undo()
    configure_logging(Settings(), force=True)


def _fail_with(secret: str) -> None:
    raise RuntimeError(f"provider refused key {secret}")


def test_no_secret_in_any_line_of_the_pipeline(log_output: io.StringIO) -> None:
    webhook_secret, (key, _, _) = new_secret(), new_key()
    url = "postgresql+asyncpg://chatsys:Db-Pa55word@db/x"
    log = structlog.stdlib.get_logger("chatsys.test")
    log.info("chatsys.test.nested", webhook={"secret": webhook_secret, "urls": [url]}, key=key)
    log.info("chatsys.test.object", config=SecretHolder(PROVIDER_KEY))
    try:
        _fail_with(PROVIDER_KEY)
    except RuntimeError:
        log.exception("chatsys.test.failed", ticket=TICKET)
    # Foreign loggers: their messages, their %-args, their exceptions.
    logging.getLogger("sqlalchemy.engine").warning("connect to %s failed", url)
    logging.getLogger("uvicorn.error").warning("header Authorization: Bearer %s", key)
    try:
        raise ConnectionError(f"cannot reach redis://:Unlisted-pw9@cache:6379 with {key}")
    except ConnectionError:
        logging.getLogger("arq.worker").exception("job failed")

    text = log_output.getvalue()
    events = ("chatsys.test.nested", "chatsys.test.object", "chatsys.test.failed", "job failed")
    for logged in (*events, "provider refused key", "_fail_with"):  # all, with tracebacks
        assert logged in text
    for secret in (webhook_secret[6:], key[17:], TICKET[4:], PROVIDER_KEY, "Db-Pa55word", "pw9"):
        assert secret not in text
    for masked in ("whsec_***", "csk_", "chatsys:***@db"):
        assert masked in text


@pytest.mark.parametrize("log_output", ["json"], indirect=True)
def test_json_lines_stay_json_when_masked(log_output: io.StringIO) -> None:
    structlog.stdlib.get_logger("chatsys.test").info(
        "chatsys.test.x", password="p4ss word", url="redis://:p4ss@x", has_password=True
    )
    line = json.loads(log_output.getvalue().splitlines()[-1])
    assert line["password"] == "***"
    assert line["url"] == "redis://:***@x"
    assert line["has_password"] is True


class SecretHolder:
    def __init__(self, key: str) -> None:
        self.key = key

    def __repr__(self) -> str:
        return f"SecretHolder(key={self.key!r})"


def test_a_crash_is_logged_through_the_scrubber() -> None:
    """An exception nobody caught ends the process through the log, not Python's hook."""
    script = (
        "from chatsys.infra.logging import configure_logging\n"
        "from chatsys.infra.settings import Settings\n"
        "configure_logging(Settings(log_format='json'))\n"
        "raise RuntimeError('cannot reach postgresql://app:Unlisted-pw9@db/x')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    [line] = [json.loads(raw) for raw in done.stderr.splitlines() if raw.startswith("{")]
    assert line["event"] == "chatsys.crashed"
    assert "RuntimeError: cannot reach postgresql://app:***@db/x" in line["exception"]
    assert "Unlisted-pw9" not in done.stderr
