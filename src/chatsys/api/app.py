"""The FastAPI app factory."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import BaseRoute

from chatsys.api.access import router as access
from chatsys.api.access.deps import access_services
from chatsys.api.access.middleware import AccessMiddleware, SecurityHeadersMiddleware
from chatsys.api.approvals import router as approvals
from chatsys.api.conversations import router as conversations
from chatsys.api.errors import install_error_handlers
from chatsys.api.health import router as health
from chatsys.api.links import document_links
from chatsys.api.mcp import router as mcp
from chatsys.api.middleware import RequestContextMiddleware, outage_reporter
from chatsys.api.nlu import router as analysis
from chatsys.api.problems import document_problems
from chatsys.api.streaming import router as streams
from chatsys.api.streaming.document import document_streams
from chatsys.api.tasks import router as tasks
from chatsys.api.webhooks import deliveries as webhook_deliveries
from chatsys.api.webhooks import router as webhooks
from chatsys.api.wiring import Provider, Wiring

__all__ = ["Started", "Wire", "create_app"]


@dataclass(frozen=True, slots=True)
class Started:
    """What the composition root hands back once it has wired the app."""

    going_away: Callable[[], None]  # shutdown begins: end every live stream now


Wire = Callable[[Wiring], AbstractAsyncContextManager[Started]]
"""Opens the process' resources, fills the app's wiring, yields, then closes them."""


def operation_id(route: APIRoute) -> str:
    """Stable operation ids (``conversations-create_conversation``) for generated SDKs."""
    tag = str(route.tags[0]) if route.tags else "default"
    return f"{tag}-{route.name}"


def _on_shutdown_signals(callback: Callable[[], None], grace: float = 0.5) -> Callable[[], None]:
    """Run ``callback`` on the event loop when SIGTERM/SIGINT arrives, before the
    server's own handler (uvicorn's) starts its shutdown; return an undo function.

    uvicorn waits for open responses before it runs the lifespan shutdown, so an SSE
    stream would hold it up, and it closes WebSockets with 1012; ending our streams
    first gives clients a prompt "going away" (1001) and the ``after`` to resume from.
    The server's handler runs ``grace`` seconds later, so its shutdown cannot overtake
    the close frames; a second signal goes to it at once.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}
    signalled = False
    for sig in (signal.SIGTERM, signal.SIGINT):
        handler = signal.getsignal(sig)
        if not callable(handler):
            continue

        def chained(signum: int, frame: FrameType | None, handler: Any = handler) -> None:
            nonlocal signalled
            if signalled:
                handler(signum, frame)
                return
            signalled = True

            def first() -> None:
                callback()
                loop.call_later(grace, handler, signum, frame)

            loop.call_soon_threadsafe(first)

        previous[sig] = handler
        signal.signal(sig, chained)

    def undo() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return undo


@dataclass(frozen=True, slots=True)
class WebConfig:
    """What the app's middleware needs to know when it is built."""

    cors_origins: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    hsts: bool = False


def create_app(
    wire: Wire,
    *,
    version: str,
    shutdown_signals: bool = False,
    web: WebConfig | None = None,
) -> FastAPI:
    """Build the app. ``wire`` is entered in the lifespan: resources are opened when
    the server starts, not when the app object is built."""
    wiring = Wiring()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with wire(wiring) as started:
            missing = wiring.missing(_providers(app) | {access_services})
            if missing:
                raise RuntimeError("the app's wiring provides no " + ", ".join(missing))
            app.state.going_away = started.going_away  # what a shutdown signal calls first
            undo = _on_shutdown_signals(started.going_away) if shutdown_signals else None
            try:
                yield
            finally:
                if undo is not None:
                    undo()
                wiring.clear()

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
    app.state.wiring = wiring  # read by each route's providers, one object each
    web = web or WebConfig()
    install_error_handlers(app)
    # Added innermost first: the last one added sees a request first.
    app.add_middleware(AccessMiddleware, access=wiring.getter(access_services))
    if web.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(web.cors_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
            expose_headers=["Location", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining",
                            "RateLimit-Reset", "X-Request-Id"],
        )  # fmt: skip
    if web.trusted_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(web.trusted_hosts))
    app.add_middleware(RequestContextMiddleware, outages=wiring.getter(outage_reporter))
    app.add_middleware(SecurityHeadersMiddleware, hsts=web.hsts)
    app.include_router(health.router)
    app.include_router(conversations.router)
    app.include_router(tasks.router)
    app.include_router(approvals.router)
    app.include_router(analysis.router)
    app.include_router(access.router)
    app.include_router(streams.router)
    app.include_router(mcp.router)
    app.include_router(webhooks.router)
    app.include_router(webhook_deliveries.router)
    _document(app)
    return app


def providers_of(dependant: Dependant) -> set[Provider[Any]]:
    """Every provider a route's dependency tree asks for."""
    found: set[Provider[Any]] = set()
    for sub in dependant.dependencies:
        if isinstance(sub.call, Provider):
            found.add(sub.call)
        found |= providers_of(sub)
    return found


def route_dependants(routes: Sequence[BaseRoute], prefix: str = "") -> list[tuple[str, Dependant]]:
    """(path, dependency tree) of every route, those of included routers too (FastAPI
    keeps an included router whole and resolves its routes lazily)."""
    found: list[tuple[str, Dependant]] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            found += route_dependants(inner.routes, prefix + (getattr(context, "prefix", "") or ""))
            continue
        dependant = getattr(route, "dependant", None)
        if isinstance(dependant, Dependant):
            found.append((prefix + getattr(route, "path", ""), dependant))
    return found


def _providers(app: FastAPI) -> set[Provider[Any]]:
    found: set[Provider[Any]] = set()
    for _, dependant in route_dependants(app.routes):
        found |= providers_of(dependant)
    return found


def _document(app: FastAPI) -> None:
    """Say in the OpenAPI document what the middleware and error handlers do: every /v1
    operation takes a bearer key (so Swagger UI offers "Authorize" and SDKs send the
    key), every error is a problem+json (``api/problems.py``), the streams' frames are
    components (``api/streaming/document.py``), and answers link to the calls they
    lead to (``api/links.py``)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()
        spec.setdefault("components", {})["securitySchemes"] = {
            "apiKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "an API key, csk_<prefix>_<secret> (see POST /v1/api-keys)",
            }
        }
        for path, operations in spec.get("paths", {}).items():
            if path.startswith("/v1/"):
                for operation in operations.values():
                    operation["security"] = [{"apiKey": []}]
        document_problems(spec, app.routes)
        document_streams(spec)
        document_links(spec)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
