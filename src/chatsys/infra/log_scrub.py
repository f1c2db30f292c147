"""The one place secrets leave a log line: every rendered line (ours, SQLAlchemy's,
uvicorn's, arq's, LiteLLM's, an MCP server's relayed stderr) goes through
:class:`SecretScrubber` as the last step of the logging pipeline
(``infra/logging.py``), after the renderer, so that whatever a line was built from
(a message, a nested field, an object's ``repr``, an exception's text, a traceback)
is masked in the text that is written.

What it masks, keeping what identifies the kind of secret:

- chatsys' own credentials: ``whsec_***`` (webhook signing secrets), ``cst_***``
  (stream tickets), ``csk_<prefix>_***`` (API keys: the prefix is the key's public
  id, shown in listings);
- passwords in URLs: ``postgresql://user:***@host``, ``redis://:***@host``;
- credentials after ``Bearer`` / ``Basic`` and after ``authorization``,
  ``password``, ``api_key`` keys (``password=...``, ``"authorization": "..."``);
- the values Postgres quotes in an error (``DETAIL: Failing row contains (...)``,
  ``Key (col)=(...)``): a refused row holds whatever the user or the server put in
  it (an input, a signing secret, a key hash);
- the configured secrets (settings typed as secrets, e.g. a provider API key, and
  the passwords of the database and Redis URLs), wherever they appear.

Cheap on the lines that hold none of it (nearly all of them): substring checks on the
lower-cased line decide which compiled patterns run, if any.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, SecretStr

MASK = "***"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
MIN_SECRET_LENGTH = 6  # a shorter configured value would mask ordinary words

# Inside a JSON string a value ends at an unescaped quote or an escaped newline; in
# plain text at a newline.
_IN_QUOTES = r"(?:[^\"\\\n]|\\[^n])"
# Each rule: what the lower-cased line must contain for it to run, and its pattern, in
# which the first group that matched is what stays.
_RULES: list[tuple[tuple[str, ...], str]] = [
    (("whsec_", "cst_", "csk_"), r"(whsec_|cst_|csk_(?:[A-Za-z0-9]{12}_)?)[A-Za-z0-9+/=_-]{4,}"),
    (("://",), r"(://[^:/@\s\"'\\]*:)(?!\*\*\*@)[^@\s/\"'\\]+(?=@)"),
    (
        # After a key named for a credential: a double-quoted value (JSON), a
        # single-quoted one (a Python repr), a bare one (password=..., a header line),
        # but not a JSON literal (``"has_password": true``).
        ("authorization", "passw", "api_key", "api-key", "apikey"),
        r"(?i)((?:authorization|password|passwd|api[_-]?key)[\"']?\s*[:=]\s*[\"']?)"
        rf"(?:(?<=\"){_IN_QUOTES}+|(?<=')[^'\n]+|(?<![\"'])(?!(?:true|false|null|-?\d+)\b)"
        r"(?:(?:bearer|basic)\s+)?[^\s\"',;&})\]]+)",
    ),
    (("bearer", "basic"), r"(?i)((?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}"),
    (("failing row",), r"(Failing row contains )" + _IN_QUOTES + "*"),
    (("key (",), r"(Key \([^)\n]*\)=\()(?:[^)\"\\\n]|\\[^n])*"),
]


def _variants(secret: str) -> Iterator[str]:
    """A secret as it may appear in a line: as is, escaped in a JSON string, quoted."""
    yield secret
    yield json.dumps(secret)[1:-1]
    yield repr(secret)[1:-1]


class SecretScrubber:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._rules = [(triggers, re.compile(pattern)) for triggers, pattern in _RULES]
        literals = {
            variant
            for secret in secrets
            if len(secret) >= MIN_SECRET_LENGTH
            for variant in _variants(secret)
        }
        self._literals = tuple(sorted(literals, key=len, reverse=True))  # longest first
        self._secrets = re.compile("()(?:" + "|".join(map(re.escape, self._literals)) + ")")

    def __call__(self, text: str) -> str:
        if "\x1b[" in text:  # a coloured console line: colour codes can split a secret
            plain = _ANSI.sub("", text)
            scrubbed = self._scrub(plain)
            return text if scrubbed == plain else scrubbed  # masked lines lose colour
        return self._scrub(text)

    def _scrub(self, text: str) -> str:
        lower = text.lower()  # plain loops: this runs for every line
        for triggers, pattern in self._rules:
            for trigger in triggers:
                if trigger in lower:
                    text = pattern.sub(_mask, text)
                    break
        for literal in self._literals:
            if literal in text:
                return self._secrets.sub(_mask, text)
        return text


def _mask(match: re.Match[str]) -> str:
    for kept in match.groups():
        if kept is not None:
            return kept + MASK
    return MASK  # pragma: no cover - every branch has its group


def configured_secrets(settings: BaseModel) -> list[str]:
    """Every secret value in the settings: ``SecretStr`` fields, at any depth; for a
    URL, its password (the rest of it is not a secret and helps when reading a log)."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, BaseModel):
            found.extend(configured_secrets(value))
        elif isinstance(value, SecretStr):
            found.extend(_secret_parts(value.get_secret_value()))
    return found


def _secret_parts(value: str) -> list[str]:
    if "://" not in value:
        return [value]
    try:
        password = urlsplit(value).password
    except ValueError:
        return [value]  # not a URL after all: all of it
    return [] if not password else [password, unquote(password)]
