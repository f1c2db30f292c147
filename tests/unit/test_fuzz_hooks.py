"""The fuzz drops only the reports it names (tests/tools/fuzz/hooks.py): a 422 whose
rule no schema can state; any other refusal of schema-valid data still fails the run."""

from __future__ import annotations

import uuid

import pytest

from tests.tools.fuzz.hooks import beyond_the_schema, deep_in_a_json_object, linked_non_uuid

INVALID = "urn:chatsys:problem:invalid-input"
VALIDATION = "urn:chatsys:problem:validation-error"


def problem(detail: str, kind: str = INVALID, **extra: object) -> dict[str, object]:
    return {"type": kind, "title": "Unprocessable Entity", "status": 422, "detail": detail,
            **extra}  # fmt: skip


@pytest.mark.parametrize(
    ("detail", "why"),
    [
        ("cursor is not one this API returned", "opaque cursor"),
        ("plan: the dependencies form a cycle", "plan's cross-step rules"),
        ("model '0' is not configured; configured: openai/gpt-4o-mini", "configured models"),
        ("webhook URL points at 10.0.0.1, a private address", "webhook address"),
        ("webhook URL host 'vm' resolves to 127.0.0.1, a loopback address", "webhook address"),
        ("webhook URL host 'a..b' is not a valid host name", "webhook host name"),
    ],
)
def test_the_rules_no_schema_can_state_are_named(detail: str, why: str) -> None:
    assert beyond_the_schema(problem(detail)) == why


@pytest.mark.parametrize(
    "body",
    [
        problem("title must not be blank"),
        problem("input must not be empty"),
        problem("give either agents or plan, not both"),
        problem("model 'x' is something else"),
        problem("webhook URL must use http or https (scheme: none)"),
        problem("webhook URL host 'x' has no port"),
        problem("cursor is not one this API returned", kind=VALIDATION),  # another type
    ],
)
def test_every_other_refusal_is_kept(body: dict[str, object]) -> None:
    assert beyond_the_schema(body) is None


def test_a_linked_value_that_is_not_a_uuid_is_not_schema_valid_data() -> None:
    errors = [{"location": "path.webhook_id", "message": "not a UUID", "type": "uuid_parsing"}]
    refused = problem("path.webhook_id: ...", kind=VALIDATION, errors=errors)
    assert linked_non_uuid(refused, {"webhook_id": "msg_2149b6af32a64c1d"})
    assert linked_non_uuid(refused, {"webhook_id": None})
    # a real UUID refused, or a refusal of another part, is kept
    assert not linked_non_uuid(refused, {"webhook_id": str(uuid.uuid4())})
    body_too = [*errors, {"location": "body.url", "message": "x", "type": "missing"}]
    mixed = problem("...", kind=VALIDATION, errors=body_too)
    assert not linked_non_uuid(mixed, {"webhook_id": "msg_1"})


def test_only_the_text_rule_deep_in_a_json_object_is_dropped() -> None:
    def refusal(message: str, kind: str = "text_control") -> dict[str, object]:
        error = {"location": "body.metadata", "message": message, "type": kind}
        return problem(f"body.metadata: {message}", kind=VALIDATION, errors=[error])

    assert deep_in_a_json_object(refusal("the key ['a']['b']['\\x05']: must be one line"))
    assert deep_in_a_json_object(refusal("the value at ['a'][0]: must not contain NUL", "text_nul"))
    assert not deep_in_a_json_object(refusal("must be one line without control characters"))
    assert not deep_in_a_json_object(refusal("the key ['a']: too long", "string_too_long"))
