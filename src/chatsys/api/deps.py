"""Dependencies for routes, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from chatsys.api.services import ApiServices

LOCAL_OWNER = "local"


def get_services(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.services
    return services


def current_owner() -> str:
    """Who is calling. API keys and roles are not built yet, so every caller is the
    single local owner; the key-based principal replaces this function."""
    return LOCAL_OWNER


ServicesDep = Annotated[ApiServices, Depends(get_services)]
OwnerDep = Annotated[str, Depends(current_owner)]
