"""Dependencies for routes, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from chatsys.api.services import ApiServices

LOCAL_OWNER = "local"


# Dependencies are ``async def``: FastAPI runs plain ``def`` dependencies in a thread
# pool, a thread hop per request for nothing (it showed in the submit profile).
async def get_services(connection: HTTPConnection) -> ApiServices:
    services: ApiServices = connection.app.state.services
    return services


async def current_owner() -> str:
    """Who is calling. API keys and roles are not built yet, so every caller is the
    single local owner; the key-based principal replaces this function."""
    return LOCAL_OWNER


ServicesDep = Annotated[ApiServices, Depends(get_services)]
OwnerDep = Annotated[str, Depends(current_owner)]
