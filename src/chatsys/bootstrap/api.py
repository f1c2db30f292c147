"""The API process' composition root: each feature's routes get their use cases here.

One ``wire_<feature>`` function per API feature fills the providers that feature's
routes ask for (``chatsys.api.<feature>.deps``); ``build_app`` opens the process'
resources in the app's lifespan and calls them all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import FastAPI

from chatsys import __version__
from chatsys.agents.mcp.manager import McpManager
from chatsys.api.access import deps as access_api
from chatsys.api.access.middleware import AccessServices
from chatsys.api.app import Started, WebConfig, create_app
from chatsys.api.approvals import deps as approvals_api
from chatsys.api.conversations import deps as conversations_api
from chatsys.api.health import deps as health_api
from chatsys.api.mcp import deps as mcp_api
from chatsys.api.middleware import outage_reporter
from chatsys.api.nlu import deps as nlu_api
from chatsys.api.streaming import deps as streaming_api
from chatsys.api.streaming.sse import StreamConfig
from chatsys.api.tasks import deps as tasks_api
from chatsys.api.webhooks import deps as webhooks_api
from chatsys.api.wiring import Wiring
from chatsys.bootstrap.components import (
    ConfigurationError,
    Resources,
    access_config,
    address_vetter,
    agent_catalogue,
    gateway_config,
    llm_info,
    load_settings,
    mcp_manager,
    task_quotas,
    webhook_callbacks,
)
from chatsys.domain.access.use_cases import (
    Authenticate,
    CreateApiKey,
    ListApiKeys,
    ListAuditLogs,
    RevokeApiKey,
    SetKeyPriority,
)
from chatsys.domain.approvals.decisions import DecideApproval, ListApprovals
from chatsys.domain.conversations.messages import ListMessages
from chatsys.domain.conversations.use_cases import (
    GetConversation,
    ListConversations,
    StartConversation,
)
from chatsys.domain.health.readiness import CheckReadiness
from chatsys.domain.mcp.changes import AcceptMcpTool, AddMcpServer, CallMcpTool, RemoveMcpServer
from chatsys.domain.nlu import RuleBasedAnalyzer
from chatsys.domain.nlu.analyze_text import AnalyzeText
from chatsys.domain.planning.planner import Planner
from chatsys.domain.streaming.follow import FollowConversation, FollowTask, StreamLimits
from chatsys.domain.tasks.cancel import CancelTask
from chatsys.domain.tasks.queries import GetTask, ListTaskEvents, ListTasks
from chatsys.domain.tasks.submission import Dispatcher, SubmitTask
from chatsys.domain.webhooks.delivery import GetDelivery, ListDeliveries, Redeliver
from chatsys.domain.webhooks.endpoints import (
    CreateWebhook,
    DeleteWebhook,
    GetWebhook,
    ListWebhooks,
    RotateWebhookSecret,
)
from chatsys.infra.clock import SystemClock
from chatsys.infra.db.migrations import head_revision
from chatsys.infra.events import RedisEventHub
from chatsys.infra.heap import settle_heap
from chatsys.infra.heartbeat import WorkerHeartbeatProbe
from chatsys.infra.logging import configure_logging
from chatsys.infra.probes import PostgresProbe, RedisProbe
from chatsys.infra.ratelimit import RedisRateLimiter, RedisTickets
from chatsys.infra.settings import Settings
from chatsys.infra.webhook_http import ResolvingUrlGuard
from chatsys.infra.webhook_slots import NO_SLOTS


@dataclass(frozen=True, slots=True)
class ApiParts:
    """What several features' use cases share within one API process."""

    resources: Resources
    hub: RedisEventHub
    mcp: McpManager
    clock: SystemClock
    guard: ResolvingUrlGuard


def wire_health(wiring: Wiring, parts: ApiParts) -> None:
    resources = parts.resources
    probes = CheckReadiness(
        [
            PostgresProbe(resources.engine, expected_revision=head_revision()),
            RedisProbe(resources.redis),
            WorkerHeartbeatProbe(resources.redis, ttl=resources.settings.worker.heartbeat_ttl),
        ]
    )
    wiring.provide(health_api.readiness, probes)
    wiring.provide(outage_reporter, resources.outages)  # 503s while Postgres or Redis is away
    wiring.provide(health_api.llm, llm_info(resources.settings))


def wire_conversations(wiring: Wiring, parts: ApiParts) -> None:
    uow = parts.resources.unit_of_work
    wiring.provide(conversations_api.start_conversation, StartConversation(uow, parts.clock))
    wiring.provide(conversations_api.get_conversation, GetConversation(uow))
    wiring.provide(conversations_api.list_conversations, ListConversations(uow))
    wiring.provide(conversations_api.list_messages, ListMessages(uow))


def wire_tasks(wiring: Wiring, parts: ApiParts) -> None:
    resources, settings = parts.resources, parts.resources.settings
    uow = resources.unit_of_work
    submit = SubmitTask(
        uow,
        parts.clock,
        Planner(),
        Dispatcher(uow, resources.queue()),
        quotas=task_quotas(settings),
        allowed_models=gateway_config(settings).configured_models(),
        max_input_bytes=settings.api.max_input_bytes,
        url_guard=parts.guard,
    )
    wiring.provide(tasks_api.submit_task, submit)
    wiring.provide(tasks_api.get_task, GetTask(uow))
    wiring.provide(tasks_api.list_tasks, ListTasks(uow))
    wiring.provide(tasks_api.list_events, ListTaskEvents(uow))
    wiring.provide(
        tasks_api.cancel_task, CancelTask(uow, parts.clock, webhook_callbacks(resources))
    )


def wire_streaming(wiring: Wiring, parts: ApiParts) -> None:
    resources, settings = parts.resources, parts.resources.settings
    uow = resources.unit_of_work
    limits = StreamLimits(
        buffer=settings.stream.buffer,
        idle=settings.stream.keepalive,
        db_concurrency=max(1, settings.database.pool_size // 2),
    )
    gate = asyncio.Semaphore(limits.db_concurrency)  # shared by every stream of the process
    wiring.provide(streaming_api.follow_task, FollowTask(uow, parts.hub, limits, gate))
    wiring.provide(
        streaming_api.follow_conversation, FollowConversation(uow, parts.hub, limits, gate)
    )
    config = StreamConfig(
        keepalive=settings.stream.keepalive,
        close_timeout=settings.stream.close_timeout,
        max_subscriptions=settings.stream.max_subscriptions,
    )
    wiring.provide(streaming_api.stream, config)


def wire_nlu(wiring: Wiring, parts: ApiParts) -> None:
    uow = parts.resources.unit_of_work
    wiring.provide(nlu_api.analyze, AnalyzeText(uow, RuleBasedAnalyzer()))
    wiring.provide(nlu_api.agents, agent_catalogue(parts.resources.settings))


def wire_mcp(wiring: Wiring, parts: ApiParts) -> None:
    servers, uow = parts.mcp, parts.resources.unit_of_work
    wiring.provide(mcp_api.mcp, servers)
    wiring.provide(mcp_api.add_mcp_server, AddMcpServer(servers, uow))
    wiring.provide(mcp_api.remove_mcp_server, RemoveMcpServer(servers, uow))
    wiring.provide(mcp_api.accept_mcp_tool, AcceptMcpTool(servers, uow))
    wiring.provide(mcp_api.call_mcp_tool, CallMcpTool(servers, uow))


def wire_webhooks(wiring: Wiring, parts: ApiParts) -> None:
    resources, settings = parts.resources, parts.resources.settings
    uow, clock = resources.unit_of_work, parts.clock
    wiring.provide(webhooks_api.create_webhook, CreateWebhook(uow, clock, parts.guard))
    wiring.provide(webhooks_api.list_webhooks, ListWebhooks(uow))
    wiring.provide(webhooks_api.get_webhook, GetWebhook(uow))
    wiring.provide(webhooks_api.delete_webhook, DeleteWebhook(uow, clock))
    rotate = RotateWebhookSecret(uow, clock, default_grace=settings.webhooks.rotation_grace)
    wiring.provide(webhooks_api.rotate_webhook_secret, rotate)
    wiring.provide(webhooks_api.list_deliveries, ListDeliveries(uow))
    wiring.provide(webhooks_api.get_delivery, GetDelivery(uow))
    wiring.provide(webhooks_api.redeliver, Redeliver(uow, clock, NO_SLOTS))


def wire_access(wiring: Wiring, parts: ApiParts) -> None:
    resources, settings = parts.resources, parts.resources.settings
    uow, clock = resources.unit_of_work, parts.clock
    authenticate = Authenticate(uow, clock, cache_seconds=settings.auth.cache_seconds)
    tickets = RedisTickets(resources.redis, ttl=settings.auth.ticket_ttl)
    access = AccessServices(
        config=access_config(settings),
        authenticate=authenticate.execute,
        still_active=authenticate.still_active,
        limiter=RedisRateLimiter(resources.redis),
        tickets=tickets,
    )
    wiring.provide(access_api.access_services, access)
    wiring.provide(access_api.tickets, tickets)
    wiring.provide(access_api.create_key, CreateApiKey(uow, clock))
    wiring.provide(access_api.list_keys, ListApiKeys(uow))
    wiring.provide(access_api.revoke_key, RevokeApiKey(uow, clock))
    wiring.provide(access_api.set_key_priority, SetKeyPriority(uow))
    wiring.provide(access_api.forget_key, authenticate.forget)
    wiring.provide(access_api.audit_logs, ListAuditLogs(uow))


def wire_approvals(wiring: Wiring, parts: ApiParts) -> None:
    uow = parts.resources.unit_of_work
    wiring.provide(approvals_api.decide_approval, DecideApproval(uow, parts.clock))
    wiring.provide(approvals_api.list_approvals, ListApprovals(uow))


FEATURES = (
    wire_health,
    wire_conversations,
    wire_tasks,
    wire_streaming,
    wire_nlu,
    wire_mcp,
    wire_webhooks,
    wire_access,
    wire_approvals,
)


async def check_production_keys(resources: Resources) -> None:
    """Production refuses to serve with no key to get in with."""
    async with resources.unit_of_work() as uow:
        active = await uow.api_keys.count_active()
    if active == 0:
        raise ConfigurationError(
            "refusing to start in production: no active API key. Create one with "
            "`chatsys keys create --name admin --role admin`."
        )


def build_app(
    settings: Settings | None = None, *, shutdown_signals: bool = False, tune_gc: bool = False
) -> FastAPI:
    """The ASGI app. Resources are opened in its lifespan, so building it is cheap.
    ``tune_gc``: the server process settles its heap (``chatsys.infra.heap``)."""
    settings = settings or load_settings()
    configure_logging(settings)

    @contextlib.asynccontextmanager
    async def wire(wiring: Wiring) -> AsyncIterator[Started]:
        async with contextlib.AsyncExitStack() as stack:
            resources = await Resources.open(settings, role="api")
            stack.push_async_callback(resources.close)
            hub = RedisEventHub(resources.redis)
            stack.push_async_callback(hub.close)
            if settings.is_production:
                await check_production_keys(resources)
            # The API's own manager (it imports no LiteLLM): it lists, registers and
            # debug-calls servers; workers keep their own pools.
            mcp = mcp_manager(settings, resources)
            stack.push_async_callback(mcp.close)
            guard = ResolvingUrlGuard(address_vetter(settings))
            parts = ApiParts(resources, hub, mcp, SystemClock(), guard)
            for wire_feature in FEATURES:
                wire_feature(wiring, parts)
            if tune_gc:
                settle_heap()
            yield Started(going_away=hub.going_away)

    web = WebConfig(
        cors_origins=tuple(settings.api.cors_origins),
        trusted_hosts=tuple(settings.api.trusted_hosts),
        hsts=settings.is_production,
    )
    return create_app(wire, version=__version__, shutdown_signals=shutdown_signals, web=web)


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory chatsys.bootstrap:app_factory``: the server
    process, whose SIGTERM/SIGINT first end live streams with "going away"."""
    return build_app(shutdown_signals=True, tune_gc=True)
