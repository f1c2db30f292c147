"""RFC 9457 problem+json for every error, and the one table from domain errors to HTTP."""

from __future__ import annotations

import math
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatsys.api.text import printable
from chatsys.domain.shared.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    LLMError,
    NotFound,
    TooManyRequests,
    Unavailable,
)

log = structlog.stdlib.get_logger("chatsys.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:chatsys:problem:"

# The one table: domain error -> (status, problem type slug). HTTP answers use both;
# WebSocket ``error`` frames use the slug as their code (``not_found``). A domain error
# the table does not name is a server-side failure: 500, its text not shown.
DOMAIN_ERRORS: dict[type[DomainError], tuple[int, str]] = {
    NotFound: (404, "not-found"),
    Conflict: (409, "conflict"),
    InvalidInput: (422, "invalid-input"),
    Unavailable: (503, "unavailable"),
    Forbidden: (403, "forbidden"),
    TooManyRequests: (429, "too-many-requests"),
    LLMError: (502, "provider-error"),
}
UNMAPPED = (500, "internal-error")


def classify(exc: DomainError) -> tuple[int, str]:
    """The status and problem type slug of a domain error (the most specific match)."""
    for kind in type(exc).__mro__:
        if kind in DOMAIN_ERRORS:
            return DOMAIN_ERRORS[kind]
    return UNMAPPED


_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "too-many-requests",
    500: "internal-error",
    502: "provider-error",
    503: "unavailable",
}


def request_id_of(request: Request) -> str | None:
    rid = request.scope.get("state", {}).get("request_id")
    return rid if isinstance(rid, str) else None


def problem_body(
    status: int,
    detail: str,
    *,
    instance: str | None = None,
    request_id: str | None = None,
    slug: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + (slug or _SLUGS.get(status, "error")),
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    if request_id is not None:
        body["request_id"] = request_id
    if extra:
        body.update(extra)
    return body


def problem(
    request: Request,
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body = problem_body(
        status,
        detail,
        instance=request.url.path,
        request_id=request_id_of(request),
        slug=slug,
        extra=extra,
    )
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _http_detail(request: Request, exc: StarletteHTTPException) -> str:
    default = HTTPStatus(exc.status_code).phrase
    if exc.detail and exc.detail != default:
        return str(exc.detail)
    if exc.status_code == 404:
        return f"no resource at {request.url.path}"
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow") or (exc.headers or {}).get("allow")
        suffix = f"; allowed: {allowed}" if allowed else ""
        return f"method {request.method} is not allowed on {request.url.path}{suffix}"
    return default


JSON_MEDIA_TYPE = "application/json"
UNSUPPORTED_MEDIA_DETAIL = (
    f"the body must be JSON: send it with 'Content-Type: {JSON_MEDIA_TYPE}' "
    "(or another application/*+json type)"
)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    # A location can hold a client's JSON key, and a message the text it refused.
    return printable(".".join(str(part) for part in loc)) or "request"


def _where(doc: str, pos: int) -> str:
    """``line L, column C`` (both from 1) of a character offset, as ``json`` counts them."""
    line = doc.count("\n", 0, pos) + 1
    column = pos - doc.rfind("\n", 0, pos)
    return f"line {line}, column {column}"


def _invalid_json(err: dict[str, Any], doc: Any) -> dict[str, Any]:
    """FastAPI reports a JSON decoding error at ``("body", <character offset>)``: say
    where it is as a person reads it, not as if the offset were a field."""
    reason = (err.get("ctx") or {}).get("error", "invalid")
    loc = err.get("loc", ())
    pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    where = f" at {_where(doc, pos)}" if isinstance(doc, str) and pos is not None else ""
    return {
        "location": "body",
        "message": printable(f"the body is not valid JSON: {reason}{where}"),
        "type": "json_invalid",
    }


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            errors.append(_invalid_json(err, exc.body))
            continue
        errors.append(
            {
                "location": _location(err.get("loc", ())),
                "message": printable(err.get("msg", "invalid")),
                "type": err.get("type", "value_error"),
            }
        )
    return errors


def _allowed_methods(request: Request) -> str | None:
    """Every method the request's path answers. Starlette's 405 names only the methods
    of the first route whose path matched, while GET and POST of one path are two
    routes."""
    path = request.scope.get("path", "")
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods)) or None


def _unparsable_json(request: Request, exc: StarletteHTTPException) -> JSONResponse | None:
    """FastAPI answers 400 to a JSON body ``json.loads`` fails on without a position (not
    UTF-8 text, nested too deeply); it is malformed JSON like any other: 422
    ``json_invalid``, saying why."""
    cause = exc.__cause__
    if exc.status_code != 400 or cause is None:
        return None
    if isinstance(cause, UnicodeDecodeError):
        why = f"it is not UTF-8 text (byte {cause.start + 1})"
    elif isinstance(cause, RecursionError):
        why = "it is nested too deeply"
    else:
        why = type(cause).__name__
    message = f"the body is not valid JSON: {why}"
    error = {"location": "body", "message": message, "type": "json_invalid"}
    return problem(request, 422, message, extra={"errors": [error]})


def install_error_handlers(app: FastAPI) -> None:
    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if (malformed := _unparsable_json(request, exc)) is not None:
            return malformed
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405 and (allowed := _allowed_methods(request)) is not None:
            headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
            headers["Allow"] = allowed
            exc = StarletteHTTPException(405, exc.detail, headers)
        return problem(
            request, exc.status_code, _http_detail(request, exc), headers=headers or None
        )

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        if isinstance(exc.body, bytes):
            # FastAPI reads a body as JSON only when its Content-Type says JSON (its
            # strict_content_type, on); otherwise the raw bytes reach validation, which a
            # body model always refuses. So: a body on a JSON route, not sent as JSON.
            return problem(request, 415, UNSUPPORTED_MEDIA_DETAIL)
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"location": "request", "message": "invalid"}
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        said = f"{first['location']}: {first['message']}"
        if first.get("type") == "json_invalid":  # its message says "the body" already
            said = first["message"]
        return problem(request, 422, f"{said}{more}", extra={"errors": errors})

    async def on_domain_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        status, slug = classify(exc)
        if (status, slug) == UNMAPPED:
            log.error("chatsys.api.unmapped_domain_error", error=type(exc).__name__)
            return problem(request, status, "internal error; the request id is in the log")
        headers = None
        extra = None
        if isinstance(exc, TooManyRequests):
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
        if isinstance(exc, LLMError):
            provider = exc.provider or "the model provider"
            slug = f"{slug}:{exc.provider}" if exc.provider else slug
            extra = {"provider": provider, "retryable": exc.retryable}
        return problem(request, status, exc.detail, slug=slug, headers=headers, extra=extra)

    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(DomainError, on_domain_error)
