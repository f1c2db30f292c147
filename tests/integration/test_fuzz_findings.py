"""What schemathesis found against a live server (`make fuzz`), one test per finding:
answers that did not match the document (a 405's ``Allow``, a 400 nobody documented),
input the document refuses but the server took (a boolean for a number, a Unix time
for a date-time, a non-ASCII URL for a URI), and a 500 (a date-time that overflows in
UTC). Each failed before its fix."""

from __future__ import annotations

import uuid

import httpx
import pytest

from chatsys.infra.settings import Settings, WebhookSettings

PROBLEM = "application/problem+json"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.webhooks = WebhookSettings(allow_private_networks=True)
    return settings


def refused(answer: httpx.Response, location: str) -> dict[str, object]:
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM
    problem: dict[str, object] = answer.json()
    assert str(problem["detail"]).startswith(location), problem
    return problem


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/v1/api-keys", "GET, POST"),
        ("PUT", "/v1/conversations", "GET, POST"),
        ("PATCH", f"/v1/webhooks/{uuid.uuid4()}", "DELETE, GET"),
        ("OPTIONS", "/v1/mcp/servers", "GET, POST"),
    ],
)
async def test_a_405_names_every_method_of_the_path(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    # Before: only the methods of the first route of the path (Allow: POST).
    answer = await client.request(method, path)
    assert answer.status_code == 405
    assert answer.headers["content-type"] == PROBLEM
    assert answer.headers["allow"] == allowed
    said = f"method {method} is not allowed on {path}; allowed: {allowed}"
    assert answer.json()["detail"] == said


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"title": "caf\xe9"}', "it is not UTF-8 text (byte 15)"),
        (b"[" * 100_000 + b"]" * 100_000, "it is nested too deeply"),
    ],
)
async def test_a_json_body_that_cannot_be_decoded_is_a_422_like_other_bad_json(
    client: httpx.AsyncClient, body: bytes, why: str
) -> None:
    # Before: 400 "There was an error parsing the body", a status no operation documents.
    answer = await client.post(
        "/v1/conversations", content=body, headers={"content-type": "application/json"}
    )
    problem = refused(answer, "the body is not valid JSON")
    message = f"the body is not valid JSON: {why}"
    assert problem["detail"] == message
    assert problem["errors"] == [{"location": "body", "message": message, "type": "json_invalid"}]
    assert (await client.get("/v1/conversations")).json()["items"] == []


@pytest.mark.parametrize("grace", [False, True, "60"])
async def test_a_rotation_grace_is_a_number_not_a_boolean_or_a_string(
    client: httpx.AsyncClient, grace: object
) -> None:
    made = await client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"})
    endpoint = made.json()
    # Before: false was taken as 0 s (the old secret dropped at once), "60" as 60 s.
    answer = await client.post(
        f"/v1/webhooks/{endpoint['id']}/rotate-secret", json={"grace_seconds": grace}
    )
    refused(answer, "body.grace_seconds")
    now = (await client.get(f"/v1/webhooks/{endpoint['id']}")).json()
    assert now["previous_secret_expires_at"] is None  # nothing rotated
    fine = await client.post(
        f"/v1/webhooks/{endpoint['id']}/rotate-secret", json={"grace_seconds": 60}
    )
    assert fine.status_code == 200


@pytest.mark.parametrize(
    "value",
    [
        "0.5",  # before: a Unix time, 1970-01-01T00:00:00.5Z
        "1700000000",
        "2026-01-31",  # a date, not a date-time
        "2026-01-31T09:30:00",  # no offset
        "yesterday",
    ],
)
async def test_an_audit_log_time_is_an_rfc3339_date_time(
    client: httpx.AsyncClient, value: str
) -> None:
    answer = await client.get("/v1/audit-logs", params={"since": value})
    problem = refused(answer, "query.since")
    assert "RFC 3339" in str(problem["detail"])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("since", "9999-12-31T23:59:59-01:00"),  # year 10000 in UTC
        ("until", "0001-01-01T00:00:00+01:00"),  # year 0 in UTC
    ],
)
async def test_an_audit_log_time_outside_what_utc_can_hold_is_a_422_not_a_500(
    client: httpx.AsyncClient, name: str, value: str
) -> None:
    answer = await client.get("/v1/audit-logs", params={name: value})
    problem = refused(answer, f"query.{name}")
    assert "out of range once in UTC" in str(problem["detail"])


async def test_audit_log_times_with_an_offset_are_taken(client: httpx.AsyncClient) -> None:
    await client.post("/v1/conversations", json={"title": "audited"})
    since = await client.get("/v1/audit-logs", params={"since": "2000-01-01T00:00:00+02:00"})
    assert since.status_code == 200
    assert [e["action"] for e in since.json()["items"]] == ["conversation.create"]
    until = await client.get("/v1/audit-logs", params={"until": "2000-01-01T00:00:00Z"})
    assert until.json()["items"] == []


@pytest.mark.parametrize("url", ["https://\U000e0d79", "http://b\u00fccher.example/hook"])
async def test_a_webhook_url_is_an_ascii_uri_as_documented(
    client: httpx.AsyncClient, url: str
) -> None:
    # Before: 201, an endpoint at a host that is no URI's (the document says format: uri).
    problem = refused(await client.post("/v1/webhooks", json={"url": url}), "webhook URL")
    assert "must be ASCII" in str(problem["detail"])
    assert (await client.get("/v1/webhooks")).json()["items"] == []


async def test_an_empty_model_name_is_refused_by_the_schema(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/tasks", json={"input": "hi", "model": ""})
    refused(answer, "body.model")
