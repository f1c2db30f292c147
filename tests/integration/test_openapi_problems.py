"""The OpenAPI document is the contract for errors too: every operation documents each
problem+json answer it can give, with the one ``Problem`` schema, and the answers the
server sends are what the document says (checked against the document's own schema)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from jsonschema import Draft202012Validator

from chatsys.bootstrap.cli import create_key
from chatsys.domain.access.model import Role
from chatsys.infra.settings import AuthSettings, LimitSettings, Settings

PROBLEM = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
PROBES = {"/healthz", "/readyz"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.auth = AuthSettings(enabled=True, cache_seconds=5)
    # One keyless request per test is allowed; the next is the rate limit's 429.
    settings.limits = LimitSettings(enabled=True, anonymous_requests=1)
    return settings


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
    ]


def validator(spec: dict[str, Any]) -> Draft202012Validator:
    """The document's Problem schema, its references resolved inside the document."""
    return Draft202012Validator({"$ref": PROBLEM_REF, "components": spec["components"]})


def problem_codes(operation: dict[str, Any]) -> set[int]:
    """The statuses the operation documents as a Problem (and only as one)."""
    found = set()
    for code, response in operation["responses"].items():
        content = response.get("content", {})
        if PROBLEM in content:
            assert content[PROBLEM]["schema"] == {"$ref": PROBLEM_REF}, code
            assert set(content) == {PROBLEM}, code  # not also application/json
            found.add(int(code))
    return found


def test_every_operation_documents_its_problems(app: FastAPI) -> None:
    spec = app.openapi()
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert "HTTPValidationError" not in json.dumps(spec)
    check = validator(spec)
    walked = 0
    for method, path, operation in operations(spec):
        where = (method, path)
        codes = problem_codes(operation)
        assert 500 in codes, where
        params = operation.get("parameters", [])
        has_body = "requestBody" in operation
        assert (422 in codes) == bool(params or has_body), where
        assert (401 in codes) == path.startswith("/v1/"), where
        assert (429 in codes) == (path not in PROBES), where
        assert (503 in codes) == (path not in PROBES), where  # Postgres or Redis away
        if has_body:
            assert "application/json" in operation["requestBody"]["content"], where
            assert {413, 415} <= codes, where
        if any(p["in"] == "path" for p in params):
            assert 404 in codes, where
        if any(p["in"] == "header" and p["name"] == "Idempotency-Key" for p in params):
            assert 409 in codes, where
        for code in codes:
            response = operation["responses"][str(code)]
            example = response["content"][PROBLEM]["example"]
            check.validate(example)
            assert example["status"] == code, where
            assert response["description"], where
        walked += 1
    assert walked > 30  # (36 operations when written)


def test_role_gates_and_declared_problems_are_documented(app: FastAPI) -> None:
    spec = app.openapi()

    def codes(method: str, path: str) -> set[int]:
        return problem_codes(spec["paths"][path][method])

    # 403 where a role is required (WriterDep, AdminDep), not where any key may read.
    for method, path in [
        ("post", "/v1/tasks"),
        ("post", "/v1/tasks/{task_id}/cancel"),
        ("post", "/v1/conversations"),
        ("get", "/v1/api-keys"),
        ("get", "/v1/audit-logs"),
        ("post", "/v1/mcp/servers"),
    ]:
        assert 403 in codes(method, path), path
    for method, path in [("get", "/v1/tasks"), ("get", "/v1/tasks/{task_id}"), ("get", "/v1/me")]:
        assert 403 not in codes(method, path), path
    # What the route cannot show: its use case's conflicts, a conversation in the body,
    # an MCP server that is down.
    cancel = spec["paths"]["/v1/tasks/{task_id}/cancel"]["post"]["responses"]["409"]
    assert "already finished" in cancel["description"]
    assert 409 in codes("delete", "/v1/mcp/servers/{name}")
    assert 409 in codes("post", "/v1/webhook-deliveries/{delivery_id}/redeliver")
    assert 404 in codes("post", "/v1/tasks")
    assert 404 in codes("post", "/v1/analyze")
    assert 503 in codes("get", "/v1/mcp/servers/{name}/tools")


async def test_the_answers_are_what_the_document_says(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    spec = app.openapi()
    check = validator(spec)
    _, member_key = await create_key(settings, name="m", role=Role.MEMBER, subject="dana")
    _, viewer_key = await create_key(settings, name="v", role=Role.VIEWER, subject="dana")
    member = {"Authorization": f"Bearer {member_key}"}
    viewer = {"Authorization": f"Bearer {viewer_key}"}
    seen: set[int] = set()

    def documented(answer: httpx.Response, method: str, path: str, status: int) -> None:
        where = (method, path, answer.text)
        assert answer.status_code == status, where
        assert answer.headers["content-type"] == PROBLEM, where
        body = answer.json()
        check.validate(body)
        assert body["status"] == status, where
        assert body["instance"] == answer.request.url.path, where
        assert body["request_id"] == answer.headers["x-request-id"], where
        assert status in problem_codes(spec["paths"][path][method]), where
        seen.add(status)

    task = (await client.post("/v1/tasks", json={"input": "hi"}, headers=member)).json()["id"]
    missing = str(uuid.uuid4())

    answer = await client.get("/v1/tasks")  # no key
    documented(answer, "get", "/v1/tasks", 401)
    answer = await client.get("/v1/tasks")  # no key again: over the anonymous allowance
    documented(answer, "get", "/v1/tasks", 429)

    answer = await client.get(f"/v1/tasks/{missing}", headers=member)
    documented(answer, "get", "/v1/tasks/{task_id}", 404)
    answer = await client.get("/v1/tasks/not-a-uuid", headers=member)
    documented(answer, "get", "/v1/tasks/{task_id}", 422)
    answer = await client.get("/v1/tasks", params={"limit": 0}, headers=member)
    documented(answer, "get", "/v1/tasks", 422)

    answer = await client.post("/v1/tasks", json={"inptu": "hi"}, headers=member)
    documented(answer, "post", "/v1/tasks", 422)
    assert {e["type"] for e in answer.json()["errors"]} >= {"missing", "extra_forbidden"}
    answer = await client.post(
        "/v1/tasks", content=b"hi", headers={**member, "Content-Type": "text/plain"}
    )
    documented(answer, "post", "/v1/tasks", 415)
    big = {"input": "x" * (settings.api.max_body_bytes + 1)}
    answer = await client.post("/v1/tasks", json=big, headers=member)
    documented(answer, "post", "/v1/tasks", 413)
    answer = await client.post(
        "/v1/tasks", json={"input": "hi", "conversation_id": missing}, headers=member
    )
    documented(answer, "post", "/v1/tasks", 404)

    answer = await client.post("/v1/tasks", json={"input": "hi"}, headers=viewer)
    documented(answer, "post", "/v1/tasks", 403)
    answer = await client.get("/v1/api-keys", headers=member)
    documented(answer, "get", "/v1/api-keys", 403)

    cancel = "/v1/tasks/{task_id}/cancel"
    assert (await client.post(f"/v1/tasks/{task}/cancel", headers=member)).status_code == 200
    answer = await client.post(f"/v1/tasks/{task}/cancel", headers=member)
    documented(answer, "post", cancel, 409)

    answer = await client.post("/v1/analyze", json={"text": "hi", "x": 1}, headers=member)
    documented(answer, "post", "/v1/analyze", 422)

    assert seen == {401, 403, 404, 409, 413, 415, 422, 429}
