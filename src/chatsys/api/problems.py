"""The problems each operation can answer, in the OpenAPI document.

Every error leaves as RFC 9457 ``application/problem+json`` (``api/errors.py``); this
module says so in the document. ``Problem`` is its schema, one component; each
operation's problem answers are computed from what the route is, so a new route gets
them without hand work:

- 500: every operation;
- 401: behind authentication (``/v1``); 429: rate-limited (all but the probes);
- 503: all but the probes (Postgres or Redis out of reach, ``Retry-After``);
- 403: a role gate among its dependencies (``WriterDep``, ``AdminDep``);
- 404: a path parameter; 409: an ``Idempotency-Key`` header;
- 413 and 415: a JSON body; 422: a body or any parameter.

What cannot be read off a route (a use case's ``Conflict``, an MCP server that is down)
the route declares in its decorator with ``responses=problems(...)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from http import HTTPStatus
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_flat_params
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import BaseRoute

from chatsys.api.access.deps import ROLE_GATES
from chatsys.api.access.middleware import UNAUTHORIZED_DETAIL, UNLIMITED, is_guarded
from chatsys.api.errors import PROBLEM_MEDIA_TYPE, UNSUPPORTED_MEDIA_DETAIL, problem_body

__all__ = ["FieldError", "Problem", "document_problems", "problem_response", "problems"]

REF = "#/components/schemas/Problem"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class FieldError(BaseModel):
    """One refused part of a request (a 422's ``errors``)."""

    model_config = ConfigDict(extra="forbid")

    location: str = Field(description="where: `body.input`, `query.limit`, `path.task_id`")
    message: str
    type: str = Field(description="a stable code: `missing`, `string_too_long`, ...")


class Problem(BaseModel):
    """An RFC 9457 problem: every error answer of this API."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(
        json_schema_extra={"format": "uri"},
        description="`urn:chatsys:problem:<slug>`, stable: branch on it, not on `detail`",
    )
    title: str = Field(description="the status' phrase")
    status: int = Field(ge=400, le=599)
    detail: str = Field(description="what went wrong, for a person")
    instance: str | None = Field(None, description="the request's path (no query string)")
    request_id: str | None = Field(None, description="also in `X-Request-Id` and the log")
    errors: list[FieldError] | None = Field(None, description="422: each refused part")
    provider: str | None = Field(None, description="502: the model provider that failed")
    retryable: bool | None = Field(None, description="502: whether a retry may succeed")


_DESCRIPTIONS: dict[int, str] = {
    401: "No valid API key (`WWW-Authenticate: Bearer`)",
    403: "The key's role does not allow this",
    404: "No such object, or not one this key may see",
    409: "The request clashes with the object's state, or its Idempotency-Key was used "
    "with another request (or that request is still in progress)",
    413: "The body is over the size limit",
    415: "The body is not sent as JSON",
    422: "The request is invalid: `errors` names each refused part",
    429: "Too many requests (`Retry-After` says when to try again)",
    500: "Internal error; the request id is in the log",
    502: "The model provider failed",
    503: "Something the request needs cannot be reached now",
}

_EXAMPLE_DETAILS: dict[int, str] = {
    401: UNAUTHORIZED_DETAIL,
    403: "this needs the admin role; your key is viewer",
    404: "task 0b9e6c4e-8a1f-4a8e-9a57-4d1c3f0e2b71 does not exist",
    409: "this Idempotency-Key was used with a different request",
    413: "the body is over 262144 bytes",
    415: UNSUPPORTED_MEDIA_DETAIL,
    422: "body.input: Field required",
    429: "too many requests: 600 per 60 s; retry in 12 s",
    500: "internal error; the request id is in the log",
    502: "the model provider failed: rate limited",
    503: "the MCP server 'files' cannot be reached",
}

_EXAMPLE_EXTRAS: dict[int, dict[str, Any]] = {
    422: {"errors": [{"location": "body.input", "message": "Field required", "type": "missing"}]},
    502: {"provider": "openai", "retryable": True},
}


def example(status: int, path: str = "/v1/tasks") -> dict[str, Any]:
    """A problem body as the server sends it (``problem_body`` builds both)."""
    return problem_body(
        status,
        _EXAMPLE_DETAILS.get(status, HTTPStatus(status).phrase),
        instance=path,
        request_id="3f2c9b1e4d5a46c8a0e7b2d1c6f4a9e0",
        slug="provider-error:openai" if status == 502 else None,
        extra=_EXAMPLE_EXTRAS.get(status),
    )


def problem_response(
    status: int, description: str | None = None, *, path: str = "/v1/tasks"
) -> dict[str, Any]:
    """One problem answer of an operation, as ``responses=`` and the document take it:
    ``responses={409: problem_response(409, "the task has already finished")}``."""
    body = example(status, path)
    return {
        "description": description or _DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": REF}, "example": body}},
    }


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """For a route decorator, ``responses=problems(404, 503)``: problems its route
    answers that cannot be read off the route (the description is the usual one)."""
    return {status: problem_response(status) for status in statuses}


def _tree(dependant: Dependant) -> Iterable[Dependant]:
    """The route's dependant and all of its sub-dependencies."""
    yield dependant
    for sub in dependant.dependencies:
        yield from _tree(sub)


def derived_statuses(path: str, dependant: Dependant, *, has_body: bool) -> set[int]:
    """The problem statuses an operation can answer, read off the route alone."""
    tree = list(_tree(dependant))
    found = {500}
    if is_guarded(path):
        found.add(401)
    if path not in UNLIMITED:  # the limiter (Redis); under /v1 the key and use case (Postgres)
        found |= {429, 503}
    if any(d.call in ROLE_GATES for d in tree):
        found.add(403)
    if any(d.path_params for d in tree):
        found.add(404)
    if any(p.alias == IDEMPOTENCY_HEADER for d in tree for p in d.header_params):
        found.add(409)
    if has_body:
        found |= {413, 415, 422}
    if get_flat_params(dependant):  # FastAPI's own rule for its 422
        found.add(422)
    return found


def _api_routes(routes: Sequence[BaseRoute]) -> Iterable[RouteContext]:
    for context in iter_route_contexts(routes):
        if isinstance(context.original_route, APIRoute) and context.include_in_schema:
            yield context


def _is_fastapi_422(response: dict[str, Any]) -> bool:
    content = response.get("content", {}).get("application/json", {})
    return bool(content.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"))


def _left_out_when_unknown(schema: dict[str, Any]) -> dict[str, Any]:
    """``problem_body`` leaves a field it has no value for out of the answer; it never
    sends ``null``. Say so: an optional field is of its own type, with no ``null`` and no
    ``default: null``, which generators read as "always there, maybe null"
    (openapi-typescript typed ``errors`` as ``FieldError[] | null`` on a 404 that has
    none, so ``problem.errors !== null`` held and the loop over it threw)."""
    required = set(schema.get("required", ()))
    for name, field in schema["properties"].items():
        if name in required:
            continue
        field.pop("default", None)
        kinds = [kind for kind in field.pop("anyOf", ()) if kind != {"type": "null"}]
        if len(kinds) == 1:
            field.update(kinds[0])
        elif kinds:
            field["anyOf"] = kinds
    return schema


def document_problems(spec: dict[str, Any], routes: Sequence[BaseRoute]) -> None:
    """Put the ``Problem`` component and every operation's problem answers into
    ``spec``, in place of FastAPI's ``HTTPValidationError`` 422."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    problem = _left_out_when_unknown(
        Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    )
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    for route in _api_routes(routes):
        path = route.path_format or ""
        statuses = derived_statuses(path, route.dependant, has_body=route.body_field is not None)
        for method in route.methods or ():
            operation = spec["paths"][path][method.lower()]
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses):
                given = responses.get(str(status))
                if given is None or _is_fastapi_422(given):
                    responses[str(status)] = problem_response(status, path=path)
            operation["responses"] = dict(sorted(responses.items()))
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
