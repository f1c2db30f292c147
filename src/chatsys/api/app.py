"""The FastAPI app factory."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from types import FrameType
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from chatsys.api.errors import install_error_handlers
from chatsys.api.middleware import RequestContextMiddleware
from chatsys.api.routers import (
    analysis,
    approvals,
    conversations,
    health,
    mcp,
    streams,
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


def _on_shutdown_signals(callback: Callable[[], None]) -> Callable[[], None]:
    """Run ``callback`` on the event loop when SIGTERM/SIGINT arrives, before the
    server's own handler (uvicorn's) starts its shutdown; return an undo function.

    uvicorn waits for open responses before it runs the lifespan shutdown, so an SSE
    stream would hold it up, and it closes WebSockets with 1012; ending our streams
    first gives clients a prompt "going away" (1001) and the ``after`` to resume from.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        handler = signal.getsignal(sig)
        if not callable(handler):
            continue

        def chained(signum: int, frame: FrameType | None, handler: Any = handler) -> None:
            loop.call_soon_threadsafe(callback)
            handler(signum, frame)

        previous[sig] = handler
        signal.signal(sig, chained)

    def undo() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return undo


def create_app(
    services: ServicesFactory, *, version: str, shutdown_signals: bool = False
) -> FastAPI:
    """Build the app. ``services`` is entered in the lifespan: resources are opened
    when the server starts, not when the app object is built."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with services() as built:
            app.state.services = built
            undo = _on_shutdown_signals(built.going_away) if shutdown_signals else None
            try:
                yield
            finally:
                if undo is not None:
                    undo()

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
    app.include_router(approvals.router)
    app.include_router(analysis.router)
    app.include_router(streams.router)
    app.include_router(mcp.router)
    app.include_router(webhooks.router)
    app.include_router(webhook_deliveries.router)
    return app
