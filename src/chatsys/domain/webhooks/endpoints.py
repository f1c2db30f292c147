"""Registering webhook endpoints, rotating their secrets, removing them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID, uuid4

from chatsys.domain.access.model import AuditEntry
from chatsys.domain.shared.clock import Clock
from chatsys.domain.shared.errors import Conflict, InvalidInput, NotFound
from chatsys.domain.shared.idempotency import IdempotentRequest, Replayed, claim_key
from chatsys.domain.shared.pagination import Page, cut_page, decode_cursor
from chatsys.domain.shared.uow import Factory
from chatsys.domain.webhooks.model import (
    DEFAULT_ENDPOINT_EVENTS,
    WebhookEndpoint,
    check_event_types,
    new_secret,
)
from chatsys.domain.webhooks.ports import UrlGuard, WebhooksUnitOfWork

DESCRIPTION_MAX = 200
DEFAULT_ROTATION_GRACE = 24 * 3600.0
MAX_ROTATION_GRACE = 7 * 24 * 3600.0


class CreateWebhook:
    """Register an endpoint for the owner.

    Rules: the URL must pass the URL and address rules (checked now, and again at every
    send); event types default to the three task endings and must be known; the
    secret is generated here and shown only in this answer (and after a rotation).
    Audited as ``webhook.create`` in the same transaction, with neither the secret nor
    the URL (a receiver's URL can be a credential itself, as Slack's are). Under an
    ``Idempotency-Key`` (``once``) a retry registers nothing; since the secret is shown
    once and the key's record keeps none, the retry is a conflict naming the endpoint
    (rotating its secret gives a new one).
    """

    def __init__(self, uow: Factory[WebhooksUnitOfWork], clock: Clock, guard: UrlGuard) -> None:
        self._uow = uow
        self._clock = clock
        self._guard = guard

    async def execute(
        self,
        *,
        owner: str,
        actor: str,
        url: str,
        event_types: Sequence[str] | None = None,
        description: str | None = None,
        once: IdempotentRequest[WebhookEndpoint] | None = None,
    ) -> WebhookEndpoint:
        events = check_event_types(event_types if event_types is not None
                                   else DEFAULT_ENDPOINT_EVENTS)  # fmt: skip
        if description is not None and len(description) > DESCRIPTION_MAX:
            raise InvalidInput(f"description is longer than {DESCRIPTION_MAX} characters")
        await self._guard.check(url)
        endpoint = WebhookEndpoint(
            id=uuid4(),
            owner=owner,
            url=url,
            secret=new_secret(),
            event_types=events,
            created_at=self._clock.now(),
            description=description,
        )
        request = {"url": url, "event_types": list(events), "description": description}
        async with self._uow() as uow:
            try:
                claim = await claim_key(
                    uow, once, "webhook.create", request, at=endpoint.created_at
                )
            except Replayed as replay:
                raise Conflict(
                    f"this Idempotency-Key already registered webhook endpoint "
                    f"{replay.answer.get('id')}; its secret is shown only once: rotate the "
                    "secret to get a new one"
                ) from None
            await uow.webhooks.add(endpoint)
            await uow.audit.add(
                AuditEntry("webhook.create", actor, target=f"webhook:{endpoint.id}",
                           details={"event_types": list(events)})
            )  # fmt: skip
            await claim.record(endpoint)
            await uow.commit()
        return endpoint


class ListWebhooks:
    """Newest first, keyset-paginated."""

    def __init__(self, uow: Factory[WebhooksUnitOfWork]) -> None:
        self._uow = uow

    async def execute(self, *, owner: str, limit: int, cursor: str | None) -> Page[WebhookEndpoint]:
        before = decode_cursor(cursor) if cursor else None
        async with self._uow() as uow:
            rows = await uow.webhooks.list_for_owner(owner, limit=limit + 1, before=before)
        return cut_page(rows, limit)


class GetWebhook:
    def __init__(self, uow: Factory[WebhooksUnitOfWork]) -> None:
        self._uow = uow

    async def execute(self, endpoint_id: UUID, *, owner: str) -> WebhookEndpoint:
        async with self._uow() as uow:
            found = await uow.webhooks.get(endpoint_id, owner=owner)
        if found is None:
            raise NotFound(f"webhook endpoint {endpoint_id} does not exist")
        return found


class DeleteWebhook:
    """Remove an endpoint; its deliveries not yet finished end as failed (their log stays).
    Audited as ``webhook.delete`` in the same transaction; a refused delete is not."""

    def __init__(self, uow: Factory[WebhooksUnitOfWork], clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def execute(self, endpoint_id: UUID, *, owner: str, actor: str) -> None:
        async with self._uow() as uow:
            if not await uow.webhooks.delete(endpoint_id, owner=owner):
                raise NotFound(f"webhook endpoint {endpoint_id} does not exist")
            await uow.deliveries.fail_unfinished(
                endpoint_id, reason="the webhook endpoint was deleted", at=self._clock.now()
            )
            await uow.audit.add(
                AuditEntry("webhook.delete", actor, target=f"webhook:{endpoint_id}")
            )
            await uow.commit()


class RotateWebhookSecret:
    """A new secret for the endpoint. The current one keeps signing (alongside the new)
    for ``grace_seconds`` so receivers can switch without losing a message; a secret
    still in its grace period from an earlier rotation is dropped. Audited as
    ``webhook.rotate_secret`` in the same transaction (with the grace, never a secret)."""

    def __init__(
        self,
        uow: Factory[WebhooksUnitOfWork],
        clock: Clock,
        *,
        default_grace: float = DEFAULT_ROTATION_GRACE,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._default_grace = default_grace

    async def execute(
        self, endpoint_id: UUID, *, owner: str, actor: str, grace_seconds: float | None = None
    ) -> WebhookEndpoint:
        grace = self._default_grace if grace_seconds is None else grace_seconds
        if not 0 <= grace <= MAX_ROTATION_GRACE:
            raise InvalidInput(
                f"grace_seconds must be between 0 and {MAX_ROTATION_GRACE:g} (7 days)"
            )
        async with self._uow() as uow:
            endpoint = await uow.webhooks.get(endpoint_id, owner=owner)
            if endpoint is None:
                raise NotFound(f"webhook endpoint {endpoint_id} does not exist")
            previous = endpoint.secret if grace > 0 else None
            expires = self._clock.now() + timedelta(seconds=grace) if grace > 0 else None
            endpoint.previous_secret = previous
            endpoint.previous_secret_expires_at = expires
            endpoint.secret = new_secret()
            await uow.webhooks.set_secrets(
                endpoint_id,
                secret=endpoint.secret,
                previous_secret=previous,
                previous_secret_expires_at=expires,
            )
            await uow.audit.add(
                AuditEntry("webhook.rotate_secret", actor, target=f"webhook:{endpoint_id}",
                           details={"grace_seconds": grace})
            )  # fmt: skip
            await uow.commit()
        return endpoint
