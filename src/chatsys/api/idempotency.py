"""The ``Idempotency-Key`` header of the creating POSTs, and the answer to a replay.

The rules live in ``chatsys.domain.shared.idempotency``; a route only declares the
header, hands the use case an ``IdempotentRequest`` (``once(...)``) and, when the use
case says the request was made before (``Replayed``), answers what it answered then.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from chatsys.api.text import LINE
from chatsys.domain.access.model import Principal
from chatsys.domain.shared.idempotency import (
    KEY_MAX,
    IdempotencyKey,
    IdempotentRequest,
    Replayed,
)

T = TypeVar("T")

REPLAYED_HEADER = "Idempotent-Replayed"

_FORMAT = (
    f"1 to {KEY_MAX} printable ASCII characters, e.g. a UUID; your own: another caller's "
    "key of the same text is another key. Kept 24 h."
)
REPLAY_DOC = (
    "Makes a retry safe: the same key with the same request answers what the first "
    f"answered, with `{REPLAYED_HEADER}: true`, and does nothing more; the same key "
    "with another request: 409. " + _FORMAT
)
TASK_DOC = (
    "Makes a retry safe: the same key with the same body answers the same task (as it "
    f"is now), with `{REPLAYED_HEADER}: true`; the same key with another body: 409. "
    "Shared by `POST /v1/tasks` and `POST /v1/conversations/{id}/messages`. " + _FORMAT
)
SHOWN_ONCE_DOC = (
    "Makes a retry safe: the same key with the same request creates nothing more; as "
    "the answer's secret is shown only once, the retry is 409 naming what was created; "
    "the same key with another request: 409 too. " + _FORMAT
)


def _header(description: str) -> Any:
    return Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=KEY_MAX,
        pattern=r"^[\x20-\x7e]+$",
        description=description,
    )


IdempotencyKeyHeader = Annotated[str | None, _header(REPLAY_DOC), LINE]
TaskIdempotencyKeyHeader = Annotated[str | None, _header(TASK_DOC), LINE]
ShownOnceIdempotencyKeyHeader = Annotated[str | None, _header(SHOWN_ONCE_DOC), LINE]


def once(
    principal: Principal, key: str | None, answer: Callable[[T], BaseModel]
) -> IdempotentRequest[T] | None:
    """The request under the caller's key (None without one); ``answer`` is the route's
    rendering of what the use case made, recorded as JSON."""
    if key is None:
        return None
    return IdempotentRequest(
        principal.subject, IdempotencyKey(key), lambda made: answer(made).model_dump(mode="json")
    )


def replayed(replay: Replayed, status_code: int, *, location: str | None = None) -> JSONResponse:
    """The first answer again, marked as a replay."""
    headers = {REPLAYED_HEADER: "true"}
    if location is not None:
        headers["Location"] = location
    return JSONResponse(replay.answer, status_code=status_code, headers=headers)
