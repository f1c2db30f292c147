"""The FastAPI app factory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from chatsys.api.errors import install_error_handlers
from chatsys.api.middleware import RequestContextMiddleware
from chatsys.api.routers import (
    analysis,
    conversations,
    health,
    tasks,
    webhook_deliveries,
    webhooks,
)
from chatsys.api.services import ApiServices

__all__ = ["ApiServices", "create_app"]

ServicesFactory = Callable[[], AbstractAsyncContextManager[ApiServices]]


def operation_id(route: APIRoute) -> str:
    """Stable operation ids (``conversations-create_conversation``) for generated SDKs."""
    tag = str(route.tags[0]) if route.tags else "default"
    return f"{tag}-{route.name}"


def create_app(services: ServicesFactory, *, version: str) -> FastAPI:
    """Build the app. ``services`` is entered in the lifespan: resources are opened
    when the server starts, not when the app object is built."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with services() as built:
            app.state.services = built
            yield

    app = FastAPI(
        title="chatsys",
        version=version,
        summary="Async-native multi-agent task and chat service",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health.router)
    app.include_router(conversations.router)
    app.include_router(tasks.router)
    app.include_router(analysis.router)
    app.include_router(webhooks.router)
    app.include_router(webhook_deliveries.router)
    return app
