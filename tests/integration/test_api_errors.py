"""Every error is RFC 9457 problem+json with a request id and no internals."""

from __future__ import annotations

import httpx
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


async def test_malformed_json_is_a_422_problem_naming_the_problem(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post(
        "/v1/conversations",
        content=b'{"title": "unterminated',
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM
    body = answer.json()
    assert body["errors"][0]["type"] == "json_invalid"
    assert body["detail"].startswith("body.")
    assert "invalid JSON" in body["detail"]


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
