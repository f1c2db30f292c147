"""OpenAPI links: how an answer leads to the next call.

A link says that a value of one answer (``$response.body#/id``) is a parameter of
another operation: a task's id from ``POST /v1/tasks`` is the ``task_id`` of
``GET /v1/tasks/{task_id}``, its cancel, its events and its approvals. Clients and
generators read them to chain calls, and a stateful fuzzer (schemathesis) to follow
real objects instead of random ids. The table names operations by method and path;
their operation ids are read from the document, so renaming a route function cannot
leave a link pointing nowhere (a link to an operation that is not there fails the
document's build).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["LINKS", "Link", "document_links"]

ID = "$response.body#/id"
FIRST_ID = "$response.body#/items/0/id"  # a list's first item


@dataclass(frozen=True, slots=True)
class Link:
    """From the ``status`` answer of ``source`` (``"POST /v1/tasks"``) to ``target``."""

    source: str
    status: int
    name: str
    target: str
    parameters: dict[str, str] = field(default_factory=dict)
    description: str = ""


def _task_links(source: str, status: int, task_id: str = ID) -> list[Link]:
    """What follows a task that an answer names."""
    return [
        Link(source, status, "GetTask", "GET /v1/tasks/{task_id}", {"task_id": task_id},
             "the task: status, plan, steps, result"),
        Link(source, status, "CancelTask", "POST /v1/tasks/{task_id}/cancel",
             {"task_id": task_id}, "cancel it"),
        Link(source, status, "ListTaskEvents", "GET /v1/tasks/{task_id}/events",
             {"task_id": task_id}, "its event log, or its live stream"),
        Link(source, status, "ListApprovals", "GET /v1/tasks/{task_id}/approvals",
             {"task_id": task_id}, "its tool approvals"),
    ]  # fmt: skip


_CONVERSATION = "$request.path.conversation_id"
_WEBHOOK = "$request.path.webhook_id"
_DELIVERY = "$request.path.delivery_id"

LINKS: tuple[Link, ...] = (
    *_task_links("POST /v1/tasks", 202),
    *_task_links("POST /v1/conversations/{conversation_id}/messages", 202),
    Link("POST /v1/conversations/{conversation_id}/messages", 202, "ListMessages",
         "GET /v1/conversations/{conversation_id}/messages", {"conversation_id": _CONVERSATION},
         "the conversation, with this message"),
    *_task_links("POST /v1/tasks/{task_id}/cancel", 200),
    Link("GET /v1/tasks", 200, "GetFirstTask", "GET /v1/tasks/{task_id}", {"task_id": FIRST_ID}),
    Link("POST /v1/conversations", 201, "GetConversation",
         "GET /v1/conversations/{conversation_id}", {"conversation_id": ID}),
    Link("POST /v1/conversations", 201, "ListMessages",
         "GET /v1/conversations/{conversation_id}/messages", {"conversation_id": ID}),
    Link("POST /v1/conversations", 201, "PostMessage",
         "POST /v1/conversations/{conversation_id}/messages", {"conversation_id": ID},
         "say something: it starts a task"),
    Link("POST /v1/conversations", 201, "ListTasks", "GET /v1/tasks",
         {"conversation_id": ID}, "the conversation's tasks"),
    Link("GET /v1/tasks/{task_id}/approvals", 200, "DecideApproval",
         "POST /v1/tasks/{task_id}/approvals/{approval_id}",
         {"task_id": "$request.path.task_id", "approval_id": FIRST_ID}),
    Link("POST /v1/webhooks", 201, "GetWebhook", "GET /v1/webhooks/{webhook_id}",
         {"webhook_id": ID}),
    Link("POST /v1/webhooks", 201, "RotateWebhookSecret",
         "POST /v1/webhooks/{webhook_id}/rotate-secret", {"webhook_id": ID}),
    Link("POST /v1/webhooks", 201, "DeleteWebhook", "DELETE /v1/webhooks/{webhook_id}",
         {"webhook_id": ID}),
    Link("POST /v1/webhooks/{webhook_id}/rotate-secret", 200, "GetWebhook",
         "GET /v1/webhooks/{webhook_id}", {"webhook_id": _WEBHOOK}),
    Link("GET /v1/webhook-deliveries", 200, "GetFirstDelivery",
         "GET /v1/webhook-deliveries/{delivery_id}", {"delivery_id": FIRST_ID}),
    Link("GET /v1/webhook-deliveries", 200, "RedeliverFirst",
         "POST /v1/webhook-deliveries/{delivery_id}/redeliver", {"delivery_id": FIRST_ID}),
    Link("POST /v1/webhook-deliveries/{delivery_id}/redeliver", 202, "GetDelivery",
         "GET /v1/webhook-deliveries/{delivery_id}", {"delivery_id": _DELIVERY}),
    Link("POST /v1/api-keys", 201, "RevokeApiKey", "DELETE /v1/api-keys/{key_id}",
         {"key_id": ID}, "revoke the key just made"),
)  # fmt: skip


def _operation(spec: dict[str, Any], name: str) -> dict[str, Any]:
    method, _, path = name.partition(" ")
    try:
        operation: dict[str, Any] = spec["paths"][path][method.lower()]
    except KeyError:
        raise LookupError(f"OpenAPI link to or from {name}: no such operation") from None
    return operation


def document_links(spec: dict[str, Any], links: tuple[Link, ...] = LINKS) -> None:
    """Put ``links`` into the answers of ``spec`` (in place)."""
    for link in links:
        source = _operation(spec, link.source)
        target = _operation(spec, link.target)
        answer = source["responses"][str(link.status)]
        entry: dict[str, Any] = {"operationId": target["operationId"]}
        if link.parameters:
            entry["parameters"] = dict(link.parameters)
        if link.description:
            entry["description"] = link.description
        answer.setdefault("links", {})[link.name] = entry
