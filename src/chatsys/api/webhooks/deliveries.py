"""The webhook delivery log, and redelivery."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from chatsys.api.access.deps import SubjectDep, WriterDep
from chatsys.api.idempotency import IdempotencyKeyHeader, once, replayed
from chatsys.api.problems import problem_response
from chatsys.api.text import LINE
from chatsys.api.webhooks.deps import GetDeliveryDep, ListDeliveriesDep, RedeliverDep
from chatsys.api.webhooks.schemas import DeliveryOut, DeliveryPageOut, DeliveryStatusName
from chatsys.domain.shared.idempotency import Replayed
from chatsys.domain.webhooks.model import DeliveryStatus

router = APIRouter(prefix="/v1/webhook-deliveries", tags=["webhook-deliveries"])


@router.get(
    "",
    response_model=DeliveryPageOut,
    summary="Webhook deliveries, newest first, each with every attempt",
)
async def list_deliveries(
    list_deliveries: ListDeliveriesDep,
    owner: SubjectDep,
    task_id: UUID | None = None,
    status_filter: Annotated[DeliveryStatusName | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200), LINE] = None,
) -> DeliveryPageOut:
    page = await list_deliveries.execute(
        owner=owner,
        limit=limit,
        cursor=cursor,
        task_id=task_id,
        status=DeliveryStatus(status_filter) if status_filter else None,
    )
    return DeliveryPageOut.of(page, DeliveryOut.of)


@router.get("/{delivery_id}", response_model=DeliveryOut, summary="Get a webhook delivery")
async def get_delivery(
    delivery_id: UUID, get_delivery: GetDeliveryDep, owner: SubjectDep
) -> DeliveryOut:
    return DeliveryOut.of(await get_delivery.execute(delivery_id, owner=owner))


@router.post(
    "/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryOut,
    summary="Send a finished delivery again (same body and webhook-id, a fresh schedule)",
    responses={
        409: problem_response(
            409,
            "The delivery is still in flight, its endpoint is deleted or disabled, or "
            "the Idempotency-Key was used with another request",
        )
    },
)
async def redeliver(
    delivery_id: UUID,
    redeliver: RedeliverDep,
    principal: WriterDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> DeliveryOut | Response:
    try:
        redelivered = await redeliver.execute(
            delivery_id, owner=principal.subject, actor=principal.actor,
            once=once(principal, idempotency_key, DeliveryOut.of),
        )  # fmt: skip
    except Replayed as replay:
        return replayed(replay, status.HTTP_202_ACCEPTED)
    return DeliveryOut.of(redelivered)
