"""Dependencies for routes, as ``Annotated`` aliases.

The caller (``Principal``) is established by ``api.access.AccessMiddleware`` before
any route runs; these aliases only read it and apply the role rules:

- ``ReaderDep``: whose objects a read may see (None: an admin sees everyone's);
- ``SubjectDep``: the caller's own subject (objects kept per caller, as webhooks);
- ``WriterDep``: the caller, who must be allowed to create and change (not a viewer);
- ``AdminDep``: the caller, who must be an admin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from uuid import UUID

from fastapi import Depends
from starlette.requests import HTTPConnection

from chatsys.api.access.middleware import AccessServices
from chatsys.api.wiring import Provider
from chatsys.domain.access.model import Principal, Role
from chatsys.domain.access.ports import TicketStore
from chatsys.domain.access.use_cases import (
    CreateApiKey,
    ListApiKeys,
    ListAuditLogs,
    RevokeApiKey,
    SetKeyPriority,
)


async def current_principal(connection: HTTPConnection) -> Principal:
    principal = connection.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):  # AccessMiddleware sets it for every /v1 route
        raise RuntimeError("no principal: is AccessMiddleware installed?")
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


async def read_scope(principal: PrincipalDep) -> str | None:
    return principal.scope


async def own_subject(principal: PrincipalDep) -> str:
    return principal.subject


async def writer(principal: PrincipalDep) -> Principal:
    principal.require_writer()
    return principal


async def admin(principal: PrincipalDep) -> Principal:
    principal.require(Role.ADMIN)
    return principal


ROLE_GATES = frozenset({writer, admin})
"""The dependencies that refuse a role (403); the OpenAPI document reads them."""

ReaderDep = Annotated[str | None, Depends(read_scope)]
SubjectDep = Annotated[str, Depends(own_subject)]
WriterDep = Annotated[Principal, Depends(writer)]
AdminDep = Annotated[Principal, Depends(admin)]

ForgetKey = Callable[[UUID], None]
"""Drops a revoked key from this process' authentication cache."""

create_key = Provider[CreateApiKey]("create_key")
CreateApiKeyDep = Annotated[CreateApiKey, Depends(create_key)]

list_keys = Provider[ListApiKeys]("list_keys")
ListApiKeysDep = Annotated[ListApiKeys, Depends(list_keys)]

revoke_key = Provider[RevokeApiKey]("revoke_key")
RevokeApiKeyDep = Annotated[RevokeApiKey, Depends(revoke_key)]

set_key_priority = Provider[SetKeyPriority]("set_key_priority")
SetKeyPriorityDep = Annotated[SetKeyPriority, Depends(set_key_priority)]

forget_key = Provider[ForgetKey]("forget_key")
ForgetKeyDep = Annotated[ForgetKey, Depends(forget_key)]

audit_logs = Provider[ListAuditLogs]("audit_logs")
ListAuditLogsDep = Annotated[ListAuditLogs, Depends(audit_logs)]

tickets = Provider[TicketStore]("tickets")
TicketStoreDep = Annotated[TicketStore, Depends(tickets)]

access_services = Provider[AccessServices]("access_services")
"""For ``AccessMiddleware`` (authentication, rate limits), not for routes."""
