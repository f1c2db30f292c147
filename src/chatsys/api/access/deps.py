"""Dependencies for routes, as ``Annotated`` aliases.

The caller (``Principal``) is established by ``api.access.AccessMiddleware`` before
any route runs; these aliases only read it and apply the role rules:

- ``ReaderDep``: whose objects a read may see (None: an admin sees everyone's);
- ``SubjectDep``: the caller's own subject (objects kept per caller, as webhooks);
- ``WriterDep``: the caller, who must be allowed to create and change (not a viewer);
- ``AdminDep``: the caller, who must be an admin.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from chatsys.api.services import ApiServices
from chatsys.domain.access.model import Principal, Role


# Dependencies are ``async def``: FastAPI runs plain ``def`` dependencies in a thread
# pool, a thread hop per request for nothing (it showed in the submit profile).
async def get_services(connection: HTTPConnection) -> ApiServices:
    services: ApiServices = connection.app.state.services
    return services


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


ServicesDep = Annotated[ApiServices, Depends(get_services)]
ReaderDep = Annotated[str | None, Depends(read_scope)]
SubjectDep = Annotated[str, Depends(own_subject)]
WriterDep = Annotated[Principal, Depends(writer)]
AdminDep = Annotated[Principal, Depends(admin)]
