"""API keys, the caller itself, stream tickets and the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from chatsys.api.access.deps import (
    AdminDep,
    CreateApiKeyDep,
    ForgetKeyDep,
    ListApiKeysDep,
    ListAuditLogsDep,
    PrincipalDep,
    RevokeApiKeyDep,
    SetKeyPriorityDep,
    TicketStoreDep,
)
from chatsys.api.idempotency import ShownOnceIdempotencyKeyHeader, once
from chatsys.api.pagination import PageOut
from chatsys.api.problems import problem_response
from chatsys.api.text import LINE, LineOrNone, NonBlankLine
from chatsys.api.timestamps import INSTANT
from chatsys.domain.access.model import NAME_MAX, ApiKey, AuditEntry, Role
from chatsys.domain.tasks.model import Priority

router = APIRouter(tags=["access"])

RoleName = Annotated[Role, Field(description="admin, member or viewer")]
DefaultPriority = Annotated[
    Priority,
    Field(
        description="the priority of the tasks the key submits without one (an explicit "
        "`priority` wins)"
    ),
]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: NonBlankLine = Field(min_length=1, max_length=NAME_MAX, examples=["ci pipeline"])
    role: RoleName = Role.MEMBER
    subject: LineOrNone = Field(
        default=None,
        max_length=200,
        pattern=r"^[A-Za-z0-9._@:-]+$",
        description="who owns what the key creates; keys with the same subject share "
        "their objects (default: a subject of its own)",
    )
    default_priority: DefaultPriority = Priority.NORMAL


class ApiKeyUpdate(BaseModel):
    """What can change on a key (its role, subject and secret cannot: make another key)."""

    model_config = ConfigDict(extra="forbid")

    default_priority: DefaultPriority


class ApiKeyOut(BaseModel):
    id: UUID
    name: str
    role: Role
    subject: str
    default_priority: DefaultPriority
    prefix: str
    created_at: datetime
    created_by: str | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyOut:
        return cls(
            id=key.id,
            name=key.name,
            role=key.role,
            subject=key.subject,
            default_priority=key.default_priority,
            prefix=key.prefix,
            created_at=key.created_at,
            created_by=key.created_by,
            last_used_at=key.last_used_at,
            revoked_at=key.revoked_at,
        )


class ApiKeyCreatedOut(ApiKeyOut):
    key: str = Field(description="the key itself: shown this once, never stored")


class ApiKeyPageOut(PageOut[ApiKeyOut]):
    """A page of API keys, newest first."""


class MeOut(BaseModel):
    subject: str
    role: Role
    key_id: UUID | None = Field(description="null when authentication is switched off")
    default_priority: DefaultPriority


class TicketOut(BaseModel):
    ticket: str = Field(
        description="pass as ?ticket= to one SSE or WebSocket stream: its first use spends it"
    )
    expires_at: datetime = Field(description="unused by then, it is void")


class AuditOut(BaseModel):
    event_id: UUID
    timestamp: datetime
    actor: str
    action: str
    target: str | None
    task_id: UUID | None
    agent: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditOut:
        return cls(
            event_id=entry.event_id,
            timestamp=entry.created_at,
            actor=entry.actor,
            action=entry.action,
            target=entry.target,
            task_id=entry.task_id,
            agent=entry.agent,
            details=entry.details,
        )


class AuditPageOut(PageOut[AuditOut]):
    """A page of the audit trail, newest first."""


@router.post(
    "/v1/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreatedOut,
    summary="Create an API key (admin); the key is shown once",
)
async def create_api_key(
    body: ApiKeyCreate,
    create_key: CreateApiKeyDep,
    principal: AdminDep,
    response: Response,
    idempotency_key: ShownOnceIdempotencyKeyHeader = None,
) -> ApiKeyCreatedOut:
    key, full = await create_key.execute(
        name=body.name, role=body.role, subject=body.subject, actor=principal.actor,
        default_priority=body.default_priority,
        once=once(principal, idempotency_key, ApiKeyOut.of),  # recorded without the key
    )  # fmt: skip
    response.headers["Location"] = f"/v1/api-keys/{key.id}"
    return ApiKeyCreatedOut(**ApiKeyOut.of(key).model_dump(), key=full)


@router.get("/v1/api-keys", response_model=ApiKeyPageOut, summary="List API keys (admin)")
async def list_api_keys(
    list_keys: ListApiKeysDep,
    _: AdminDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200), LINE] = None,
) -> ApiKeyPageOut:
    page = await list_keys.execute(limit=limit, cursor=cursor)
    return ApiKeyPageOut.of(page, ApiKeyOut.of)


@router.patch(
    "/v1/api-keys/{key_id}",
    response_model=ApiKeyOut,
    summary="Change an API key's default task priority (admin)",
    responses={409: problem_response(409, "The key is revoked", path="/v1/api-keys/{key_id}")},
)
async def update_api_key(
    key_id: UUID,
    body: ApiKeyUpdate,
    set_priority: SetKeyPriorityDep,
    forget_key: ForgetKeyDep,
    principal: AdminDep,
) -> ApiKeyOut:
    key = await set_priority.execute(
        key_id, default_priority=body.default_priority, actor=principal.actor
    )
    forget_key(key_id)  # this process' cache; the others' within auth cache_seconds
    return ApiKeyOut.of(key)


@router.delete(
    "/v1/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key (admin); revoking again is a no-op",
)
async def revoke_api_key(
    key_id: UUID, forget_key: ForgetKeyDep, revoke_key: RevokeApiKeyDep, principal: AdminDep
) -> Response:
    await revoke_key.execute(key_id, actor=principal.actor)
    forget_key(key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/v1/me", response_model=MeOut, summary="Who the key belongs to")
async def me(principal: PrincipalDep) -> MeOut:
    return MeOut(
        subject=principal.subject,
        role=principal.role,
        key_id=principal.key_id,
        default_priority=principal.default_priority,
    )


@router.post(
    "/v1/stream-tickets",
    status_code=status.HTTP_201_CREATED,
    response_model=TicketOut,
    summary="A single-use ticket for a stream opened where headers cannot be set",
)
async def create_stream_ticket(tickets: TicketStoreDep, principal: PrincipalDep) -> TicketOut:
    ticket = await tickets.issue(principal)
    return TicketOut(ticket=ticket, expires_at=datetime.now(UTC) + timedelta(seconds=tickets.ttl))


@router.get("/v1/audit-logs", response_model=AuditPageOut, summary="The audit trail (admin)")
async def list_audit_logs(
    audit_logs: ListAuditLogsDep,
    _: AdminDep,
    actor: Annotated[str | None, Query(max_length=200, description="e.g. key:<id>"), LINE] = None,
    action: Annotated[
        str | None,
        Query(max_length=100, description="e.g. task.cancel"),
        LINE,
    ] = None,
    task_id: UUID | None = None,
    since: Annotated[
        datetime | None, Query(description="from this time (inclusive)"), INSTANT
    ] = None,
    until: Annotated[datetime | None, Query(description="before this time"), INSTANT] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200), LINE] = None,
) -> AuditPageOut:
    page = await audit_logs.execute(
        limit=limit, cursor=cursor, actor=actor, action=action,
        task_id=task_id, since=since, until=until,
    )  # fmt: skip
    return AuditPageOut.of(page, AuditOut.of)
