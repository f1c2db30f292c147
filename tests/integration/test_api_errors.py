"""Every error is RFC 9457 problem+json with a request id and no internals."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

PROBLEM = "application/problem+json"


async def test_unknown_path_is_a_404_problem(client: httpx.AsyncClient) -> None:
    answer = await client.get("/no/such/thing")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == PROBLEM
    body = answer.json()
    assert body["status"] == 404
    assert body["detail"] == "no resource at /no/such/thing"
    assert body["request_id"] == answer.headers["x-request-id"]


async def test_wrong_method_is_a_405_problem_naming_the_allowed_ones(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.delete("/healthz")
    assert answer.status_code == 405
    assert answer.headers["content-type"] == PROBLEM
    assert answer.headers["allow"] == "GET"
    assert answer.json()["detail"] == "method DELETE is not allowed on /healthz; allowed: GET"


async def test_malformed_json_is_a_422_problem_naming_line_and_column(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post(
        "/v1/tasks",
        content=b'{\n  "input": "x",\n  "metadata": {"a": "1"\n    "b": "2"}\n}',
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM
    body = answer.json()
    said = "the body is not valid JSON: Expecting ',' delimiter at line 4, column 5"
    assert body["detail"] == said
    assert body["errors"] == [{"location": "body", "message": said, "type": "json_invalid"}]
    assert body["instance"] == "/v1/tasks"
    assert body["request_id"] == answer.headers["x-request-id"]


@pytest.mark.parametrize("content_type", ["text/plain", None])
@pytest.mark.parametrize(
    ("path", "payload"),
    [("/v1/tasks", b'{"input": "hello"}'), ("/v1/conversations", b'{"title": "hello"}')],
)
async def test_a_json_body_sent_as_another_media_type_is_a_415_problem(
    client: httpx.AsyncClient, path: str, payload: bytes, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    answer = await client.post(path, content=payload, headers=headers)
    assert answer.status_code == 415, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body = answer.json()
    assert body["type"] == "urn:chatsys:problem:unsupported-media-type"
    assert "application/json" in body["detail"]
    assert body["instance"] == path
    assert body["request_id"] == answer.headers["x-request-id"]


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/merge-patch+json"]
)
async def test_json_media_types_are_accepted(client: httpx.AsyncClient, content_type: str) -> None:
    answer = await client.post(
        "/v1/conversations", content=b'{"title": "hello"}', headers={"content-type": content_type}
    )
    assert answer.status_code == 201, answer.text


async def test_a_route_without_a_body_does_not_look_at_the_content_type(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post(
        "/v1/stream-tickets", content=b"whatever", headers={"content-type": "text/plain"}
    )
    assert answer.status_code == 201, answer.text


async def test_a_body_over_the_limit_is_a_413_problem_with_instance_and_request_id(
    client: httpx.AsyncClient,
) -> None:
    big = b'{"input": "' + b"x" * (300 * 1024) + b'"}'

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    declared = await client.post(
        "/v1/tasks", content=big, headers={"content-type": "application/json"}
    )
    streamed = await client.post(
        "/v1/tasks", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in streamed.request.headers
    for answer in (declared, streamed):
        assert answer.status_code == 413, answer.text
        assert answer.headers["content-type"] == PROBLEM
        body = answer.json()
        assert body["detail"] == "the body is over 262144 bytes"
        assert body["instance"] == "/v1/tasks"
        assert body["request_id"] == answer.headers["x-request-id"]


async def test_unhandled_exception_is_a_500_problem_without_internals(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async def explode() -> None:
        raise RuntimeError("secret internal state: password=hunter2")

    app.add_api_route("/test-explode", explode)
    answer = await client.get("/test-explode", headers={"x-request-id": "trace-me-123"})
    assert answer.status_code == 500
    assert answer.headers["content-type"] == PROBLEM
    assert answer.headers["x-request-id"] == "trace-me-123"
    body = answer.json()
    assert body["request_id"] == "trace-me-123"
    assert "hunter2" not in answer.text
    assert "Traceback" not in answer.text
    assert "RuntimeError" not in answer.text


async def test_a_client_request_id_is_echoed_and_a_bad_one_replaced(
    client: httpx.AsyncClient,
) -> None:
    kept = await client.get("/healthz", headers={"x-request-id": "abc-123"})
    assert kept.headers["x-request-id"] == "abc-123"
    replaced = await client.get("/healthz", headers={"x-request-id": "bad id\twith junk"})
    assert replaced.headers["x-request-id"] != "bad id\twith junk"
    assert len(replaced.headers["x-request-id"]) == 32
