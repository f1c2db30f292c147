"""Webhook endpoints: register, list, read, delete, rotate the secret."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from chatsys.api.access.deps import SubjectDep, WriterDep
from chatsys.api.idempotency import ShownOnceIdempotencyKeyHeader, once
from chatsys.api.text import LINE
from chatsys.api.webhooks.deps import (
    CreateWebhookDep,
    DeleteWebhookDep,
    GetWebhookDep,
    ListWebhooksDep,
    RotateWebhookSecretDep,
)
from chatsys.api.webhooks.schemas import (
    SecretRotation,
    WebhookCreate,
    WebhookOut,
    WebhookPageOut,
    WebhookWithSecretOut,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookWithSecretOut,
    summary="Register a webhook endpoint; the answer shows its secret, once",
)
async def create_webhook(
    body: WebhookCreate,
    create_webhook: CreateWebhookDep,
    principal: WriterDep,
    response: Response,
    idempotency_key: ShownOnceIdempotencyKeyHeader = None,
) -> WebhookWithSecretOut:
    endpoint = await create_webhook.execute(
        owner=principal.subject,
        actor=principal.actor,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
        once=once(principal, idempotency_key, WebhookOut.of),  # recorded without the secret
    )
    response.headers["Location"] = f"/v1/webhooks/{endpoint.id}"
    return WebhookWithSecretOut.revealed(endpoint)


@router.get("", response_model=WebhookPageOut, summary="List webhook endpoints, newest first")
async def list_webhooks(
    list_webhooks: ListWebhooksDep,
    owner: SubjectDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200), LINE] = None,
) -> WebhookPageOut:
    page = await list_webhooks.execute(owner=owner, limit=limit, cursor=cursor)
    return WebhookPageOut.of(page, WebhookOut.of)


@router.get("/{webhook_id}", response_model=WebhookOut, summary="Get a webhook endpoint")
async def get_webhook(
    webhook_id: UUID, get_webhook: GetWebhookDep, owner: SubjectDep
) -> WebhookOut:
    return WebhookOut.of(await get_webhook.execute(webhook_id, owner=owner))


@router.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a webhook endpoint (its unfinished deliveries end as failed)",
)
async def delete_webhook(
    webhook_id: UUID, delete_webhook: DeleteWebhookDep, principal: WriterDep
) -> Response:
    await delete_webhook.execute(webhook_id, owner=principal.subject, actor=principal.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{webhook_id}/rotate-secret",
    response_model=WebhookWithSecretOut,
    summary="A new secret; the previous one keeps signing too for a grace period",
)
async def rotate_webhook_secret(
    webhook_id: UUID,
    rotate_webhook_secret: RotateWebhookSecretDep,
    principal: WriterDep,
    body: SecretRotation | None = None,
) -> WebhookWithSecretOut:
    endpoint = await rotate_webhook_secret.execute(
        webhook_id,
        owner=principal.subject,
        actor=principal.actor,
        grace_seconds=body.grace_seconds if body else None,
    )
    return WebhookWithSecretOut.revealed(endpoint)
