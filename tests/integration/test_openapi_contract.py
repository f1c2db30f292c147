"""The document states what the server enforces: a request body the document's schema
refuses, the server refuses (422), and one it allows, the server takes; and the links
of the answers lead to real operations with real parameters."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from chatsys.infra.settings import Settings, WebhookSettings

DOC = "urn:chatsys:openapi"
HOOK = "http://127.0.0.1:9/hook"  # allowed below; nothing is sent (no task ends)
STEP = {"key": "draft", "agent": "writer", "instruction": "write it"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.webhooks = WebhookSettings(allow_private_networks=True)
    return settings


def document_allows(spec: dict[str, Any], component: str, body: Any) -> bool:
    registry: Registry[Any] = Registry().with_resource(
        DOC, Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    schema = {"$ref": f"{DOC}#/components/schemas/{component}"}
    return Draft202012Validator(schema, registry=registry).is_valid(body)


CASES: list[tuple[str, str, dict[str, Any], bool]] = [
    # (path, component, body, allowed)
    ("/v1/conversations", "ConversationCreate", {"title": "Payment service"}, True),
    ("/v1/conversations", "ConversationCreate", {"title": " \t "}, False),
    ("/v1/conversations", "ConversationCreate", {"title": "two\nlines"}, False),
    ("/v1/conversations", "ConversationCreate", {"metadata": {"a": {"b": [1, "x"]}}}, True),
    ("/v1/conversations", "ConversationCreate", {"metadata": {"a": {"\u0005": 1}}}, False),
    ("/v1/conversations", "ConversationCreate", {"metadata": {"a": "x\u0000"}}, False),
    ("/v1/conversations", "ConversationCreate", {"metadata": {"k\u0085": 1}}, False),
    ("/v1/tasks", "TaskCreate", {"input": "hello"}, True),
    ("/v1/tasks", "TaskCreate", {"input": " \n\u3000"}, False),
    ("/v1/tasks", "TaskCreate", {"input": "hi", "agents": ["developer", "qa"]}, True),
    ("/v1/tasks", "TaskCreate", {"input": "hi", "agents": ["wizard"]}, False),
    ("/v1/tasks", "TaskCreate", {"input": "hi", "plan": [STEP]}, True),
    ("/v1/tasks", "TaskCreate", {"input": "hi", "plan": [STEP], "agents": ["qa"]}, False),
    ("/v1/tasks", "TaskCreate", {"input": "hi", "plan": [{**STEP, "key": "Draft"}]}, False),
    ("/v1/tasks", "TaskCreate", {"input": "hi", "plan": [{**STEP, "agent": "poet"}]}, False),
    ("/v1/tasks", "TaskCreate", {"input": "hi", "plan": [{**STEP, "instruction": " "}]}, False),
    ("/v1/tasks", "TaskCreate", {"input": "hi", "webhook_url": HOOK}, True),
    ("/v1/tasks", "TaskCreate", {"input": "hi", "webhook_url": "ftp://127.0.0.1/"}, False),
    ("/v1/webhooks", "WebhookCreate", {"url": HOOK}, True),
    ("/v1/webhooks", "WebhookCreate", {"url": "127.0.0.1:9/hook"}, False),
    ("/v1/webhooks", "WebhookCreate", {"url": "http://127.0.0.1:9/a b"}, False),
    ("/v1/api-keys", "ApiKeyCreate", {"name": "ci"}, True),
    ("/v1/api-keys", "ApiKeyCreate", {"name": "  "}, False),
    ("/v1/api-keys", "ApiKeyCreate", {"name": "bell\u0007"}, False),
    ("/v1/analyze", "AnalyzeIn", {"text": "fix the login bug"}, True),
    ("/v1/analyze", "AnalyzeIn", {"text": "\u2003"}, False),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
async def test_the_document_and_the_server_agree_on_a_body(
    app: FastAPI, client: httpx.AsyncClient, case: tuple[str, str, dict[str, Any], bool]
) -> None:
    path, component, body, allowed = case
    assert document_allows(app.openapi(), component, body) is allowed
    answer = await client.post(path, json=body)
    if allowed:
        assert answer.status_code in (200, 201, 202), answer.text
    else:
        assert answer.status_code == 422, answer.text


def operations(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {op["operationId"]: op for methods in spec["paths"].values() for op in methods.values()}


def test_a_submitted_task_links_to_its_own_routes(app: FastAPI) -> None:
    spec = app.openapi()
    accepted = spec["paths"]["/v1/tasks"]["post"]["responses"]["202"]
    links = {link["operationId"]: link["parameters"] for link in accepted["links"].values()}
    task = {"task_id": "$response.body#/id"}
    assert links == {
        "tasks-get_task": task,
        "tasks-cancel_task": task,
        "tasks-list_task_events": task,
        "approvals-list_approvals": task,
    }


def test_every_link_names_an_operation_and_its_parameters(app: FastAPI) -> None:
    spec = app.openapi()
    by_id = operations(spec)
    seen = 0
    for op in by_id.values():
        for answer in op["responses"].values():
            for name, link in answer.get("links", {}).items():
                target = by_id[link["operationId"]]
                names = {p["name"] for p in target.get("parameters", [])}
                assert set(link["parameters"]) <= names, (op["operationId"], name)
                for expression in link["parameters"].values():
                    assert expression.startswith(("$response.body#/", "$request.path.")), name
                seen += 1
    assert seen >= 20
