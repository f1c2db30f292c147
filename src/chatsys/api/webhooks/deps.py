"""What the webhooks routes ask for: one provider and one ``Annotated`` alias per use case,
filled by ``chatsys.bootstrap.api``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from chatsys.api.wiring import Provider
from chatsys.domain.webhooks.delivery import GetDelivery, ListDeliveries, Redeliver
from chatsys.domain.webhooks.endpoints import (
    CreateWebhook,
    DeleteWebhook,
    GetWebhook,
    ListWebhooks,
    RotateWebhookSecret,
)

create_webhook = Provider[CreateWebhook]("create_webhook")
CreateWebhookDep = Annotated[CreateWebhook, Depends(create_webhook)]

list_webhooks = Provider[ListWebhooks]("list_webhooks")
ListWebhooksDep = Annotated[ListWebhooks, Depends(list_webhooks)]

get_webhook = Provider[GetWebhook]("get_webhook")
GetWebhookDep = Annotated[GetWebhook, Depends(get_webhook)]

delete_webhook = Provider[DeleteWebhook]("delete_webhook")
DeleteWebhookDep = Annotated[DeleteWebhook, Depends(delete_webhook)]

rotate_webhook_secret = Provider[RotateWebhookSecret]("rotate_webhook_secret")
RotateWebhookSecretDep = Annotated[RotateWebhookSecret, Depends(rotate_webhook_secret)]

list_deliveries = Provider[ListDeliveries]("list_deliveries")
ListDeliveriesDep = Annotated[ListDeliveries, Depends(list_deliveries)]

get_delivery = Provider[GetDelivery]("get_delivery")
GetDeliveryDep = Annotated[GetDelivery, Depends(get_delivery)]

redeliver = Provider[Redeliver]("redeliver")
RedeliverDep = Annotated[Redeliver, Depends(redeliver)]
