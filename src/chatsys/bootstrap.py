"""The composition root: the one place that knows every concrete adapter.

It reads settings, opens the process' resources (engine, Redis), builds the
domain's use cases on top of them and hands them to the API or the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from arq.connections import ArqRedis
from arq.worker import Worker, func
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chatsys import __version__
from chatsys.agents.config import GatewayConfig
from chatsys.agents.mcp.config import McpDefaults, ServerConfig, load_servers
from chatsys.agents.mcp.manager import McpManager
from chatsys.agents.mcp.workspace import SERVER_NAME, Workspaces, build_workspace_server
from chatsys.agents.profiles import PROFILES
from chatsys.api.access.middleware import AccessConfig, AccessServices
from chatsys.api.app import WebConfig, create_app
from chatsys.api.services import ApiServices
from chatsys.api.streaming.sse import StreamConfig
from chatsys.api.tasks.schemas import task_json
from chatsys.domain.access.model import ApiKey, Role
from chatsys.domain.access.use_cases import (
    Authenticate,
    CreateApiKey,
    ListApiKeys,
    ListAuditLogs,
    RevokeApiKey,
)
from chatsys.domain.approvals.decisions import DecideApproval, ListApprovals
from chatsys.domain.conversations.messages import ListMessages
from chatsys.domain.conversations.use_cases import (
    GetConversation,
    ListConversations,
    StartConversation,
)
from chatsys.domain.health.readiness import CheckReadiness
from chatsys.domain.nlu import RuleBasedAnalyzer
from chatsys.domain.nlu.analyze_text import AnalyzeText
from chatsys.domain.nlu.llm_analyzer import LLMAnalyzer, RulesTaskAnalyzer, TaskAnalyzer
from chatsys.domain.planning.planner import Planner
from chatsys.domain.shared.errors import InvalidInput
from chatsys.domain.streaming.follow import FollowConversation, FollowTask, StreamLimits
from chatsys.domain.tasks.cancel import CancelTask
from chatsys.domain.tasks.ending import Callbacks
from chatsys.domain.tasks.queries import GetTask, ListTaskEvents, ListTasks
from chatsys.domain.tasks.recovery import RequeueStale
from chatsys.domain.tasks.running import RunTask
from chatsys.domain.tasks.submission import Dispatcher, SubmitTask, TaskQuota
from chatsys.domain.webhooks.delivery import (
    DeliverWebhook,
    GetDelivery,
    ListDeliveries,
    Redeliver,
    RelayWebhooks,
)
from chatsys.domain.webhooks.endpoints import (
    CreateWebhook,
    DeleteWebhook,
    GetWebhook,
    ListWebhooks,
    RotateWebhookSecret,
)
from chatsys.domain.webhooks.model import RetryPolicy
from chatsys.infra import jobs
from chatsys.infra.db.engine import create_engine, create_session_factory
from chatsys.infra.db.migrations import head_revision
from chatsys.infra.db.repositories import SqlUnitOfWork
from chatsys.infra.events import RedisEventHub, RedisEventPublisher
from chatsys.infra.heap import settle_heap
from chatsys.infra.heartbeat import WorkerHeartbeat, WorkerHeartbeatProbe, new_worker_id
from chatsys.infra.logging import configure_logging, get_logger
from chatsys.infra.mcp_store import RedisMcpStore
from chatsys.infra.probes import PostgresProbe, RedisProbe
from chatsys.infra.queue import DELIVER_WEBHOOK, RUN_TASK, ArqJobQueue
from chatsys.infra.ratelimit import RedisRateLimiter, RedisTickets
from chatsys.infra.redis import arq_redis_settings, create_redis
from chatsys.infra.settings import Settings
from chatsys.infra.webhook_http import AddressVetter, HttpWebhookSender, ResolvingUrlGuard

log = get_logger(__name__)


class ConfigurationError(RuntimeError):
    """The settings cannot work; the message says what to change."""


def load_settings() -> Settings:
    settings = Settings()
    if settings.is_production and (problems := settings.problems_for_production()):
        raise ConfigurationError("refusing to start in production:\n  " + "\n  ".join(problems))
    return settings


def service_urls(settings: Settings) -> tuple[str, str]:
    """The database and Redis URLs a server process needs.

    Starting embedded servers is `chatsys dev`'s job, not a server process'.
    """
    missing = [
        name
        for name, value in (
            ("CHATSYS_DATABASE_URL", settings.database.url),
            ("CHATSYS_REDIS_URL", settings.redis.url),
        )
        if value is None
    ]
    if missing:
        raise ConfigurationError(
            f"{' and '.join(missing)} not set. `chatsys dev` starts embedded servers and sets "
            "them for its API and worker; to run this process alone, point it at running servers."
        )
    assert settings.database.url is not None
    assert settings.redis.url is not None
    return settings.database.url.get_secret_value(), settings.redis.url.get_secret_value()


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(slots=True)
class Resources:
    """What one process opens at start-up and closes at shutdown."""

    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    redis: ArqRedis
    publisher: RedisEventPublisher

    @classmethod
    async def open(cls, settings: Settings, *, role: str) -> Resources:
        database_url, redis_url = service_urls(settings)
        engine = create_engine(settings.database, database_url, role=role)
        try:
            redis = await create_redis(redis_url, queue_name=settings.worker.queue_name)
        except BaseException:
            await engine.dispose()
            raise
        return cls(
            settings, engine, create_session_factory(engine), redis, RedisEventPublisher(redis)
        )

    async def close(self) -> None:
        try:
            await self.redis.aclose()
        finally:
            await self.engine.dispose()

    def unit_of_work(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.session_factory, self.publisher)

    def queue(self) -> ArqJobQueue:
        return ArqJobQueue(self.redis, queue_name=self.settings.worker.queue_name)


def retry_policy(settings: Settings) -> RetryPolicy:
    webhooks = settings.webhooks
    return RetryPolicy(tuple(webhooks.retry_schedule), webhooks.retry_jitter)


def address_vetter(settings: Settings) -> AddressVetter:
    webhooks = settings.webhooks
    return AddressVetter(
        allow_private=webhooks.allow_private_networks,
        max_url_length=webhooks.max_url_length,
        resolve_timeout=webhooks.connect_timeout,
    )


def webhook_callbacks(resources: Resources) -> Callbacks:
    """What records (in the task's transaction) and dispatches a task's webhooks."""
    return Callbacks(task_json, resources.queue(), retry_policy(resources.settings))


def webhook_sender(settings: Settings) -> HttpWebhookSender:
    webhooks = settings.webhooks
    return HttpWebhookSender(
        address_vetter(settings),
        connect_timeout=webhooks.connect_timeout,
        timeout=webhooks.timeout,
        max_response_bytes=webhooks.max_response_bytes,
        user_agent=f"chatsys-webhooks/{__version__}",
    )


def gateway_config(settings: Settings) -> GatewayConfig:
    llm = settings.llm
    return GatewayConfig(
        default_model=llm.model,
        role_models=dict(llm.role_models),
        fallbacks=tuple(llm.fallbacks),
        api_base=llm.api_base,
        api_key=llm.api_key.get_secret_value() if llm.api_key else None,
        timeout=llm.timeout,
        num_retries=llm.num_retries,
        allowed_fails=llm.allowed_fails,
        cooldown_seconds=llm.cooldown_seconds,
    )


def llm_info(settings: Settings) -> dict[str, Any]:
    config = gateway_config(settings)
    info: dict[str, Any] = {
        "mode": "offline" if config.offline else "provider",
        "models": config.configured_models(),
        "fallbacks": list(config.fallbacks),
    }
    if config.offline:
        info["note"] = "no CHATSYS_MODEL configured: answers come from the built-in offline model"
    return info


def agent_catalogue(settings: Settings) -> list[dict[str, Any]]:
    config = gateway_config(settings)
    return [
        {
            "name": profile.name,
            "role": role.value,
            "model": config.model_for(role),
            "temperature": profile.temperature,
            "tools": list(profile.allowed_tools),
            "system_prompt": profile.system_prompt,
        }
        for role, profile in PROFILES.items()
    ]


def mcp_manager(settings: Settings, resources: Resources) -> McpManager:
    """This process' MCP servers: from the settings, the API (shared in Redis) and the
    built-in workspace. Nothing starts until a server is used (or is not lazy)."""
    mcp = settings.mcp
    workspace_root = mcp.workspace_root or settings.data_dir / "workspaces"
    workspace = ServerConfig(
        name=SERVER_NAME,
        transport="builtin",
        roles=list(mcp.workspace_roles),
        policy=mcp.workspace_policy,
        tool_policies=dict(mcp.workspace_tool_policies),
    )
    try:
        servers = load_servers(mcp.servers, mcp.config_file)
    except InvalidInput as exc:
        raise ConfigurationError(f"CHATSYS_MCP_SERVERS / CHATSYS_MCP_CONFIG_FILE: {exc}") from None
    return McpManager(
        servers,
        McpDefaults(
            call_timeout=mcp.call_timeout,
            start_timeout=mcp.start_timeout,
            max_result_chars=mcp.max_result_chars,
            health_interval=mcp.health_interval,
            restart_backoff_max=mcp.restart_backoff_max,
            sync_interval=mcp.sync_interval,
        ),
        store=RedisMcpStore(resources.redis),
        builtins=[(workspace, build_workspace_server(Workspaces(workspace_root)))],
    )


def api_services(resources: Resources, hub: RedisEventHub, mcp: McpManager) -> ApiServices:
    settings = resources.settings
    clock = SystemClock()
    readiness = CheckReadiness(
        [
            PostgresProbe(resources.engine, expected_revision=head_revision()),
            RedisProbe(resources.redis),
            WorkerHeartbeatProbe(resources.redis, ttl=settings.worker.heartbeat_ttl),
        ]
    )
    uow = resources.unit_of_work
    dispatcher = Dispatcher(uow, resources.queue())
    authenticate = Authenticate(uow, clock, cache_seconds=settings.auth.cache_seconds)
    analyzer = RuleBasedAnalyzer()
    limits = StreamLimits(
        buffer=settings.stream.buffer,
        idle=settings.stream.keepalive,
        db_concurrency=max(1, settings.database.pool_size // 2),
    )
    stream_gate = asyncio.Semaphore(limits.db_concurrency)  # shared by every stream
    guard = ResolvingUrlGuard(address_vetter(settings))
    return ApiServices(
        readiness=readiness,
        llm=llm_info(settings),
        agents=agent_catalogue(settings),
        start_conversation=StartConversation(uow, clock),
        get_conversation=GetConversation(uow),
        list_conversations=ListConversations(uow),
        submit_task=SubmitTask(
            uow,
            clock,
            Planner(),
            dispatcher,
            allowed_models=gateway_config(settings).configured_models(),
            max_input_bytes=settings.api.max_input_bytes,
            url_guard=guard,
        ),
        get_task=GetTask(uow),
        list_tasks=ListTasks(uow),
        list_events=ListTaskEvents(uow),
        cancel_task=CancelTask(uow, clock, webhook_callbacks(resources)),
        analyze=AnalyzeText(uow, analyzer),
        list_messages=ListMessages(uow),
        follow_task=FollowTask(uow, hub, limits, stream_gate),
        follow_conversation=FollowConversation(uow, hub, limits, stream_gate),
        stream=StreamConfig(
            keepalive=settings.stream.keepalive,
            close_timeout=settings.stream.close_timeout,
            max_subscriptions=settings.stream.max_subscriptions,
        ),
        going_away=hub.going_away,
        mcp=mcp,
        create_webhook=CreateWebhook(uow, clock, guard),
        list_webhooks=ListWebhooks(uow),
        get_webhook=GetWebhook(uow),
        delete_webhook=DeleteWebhook(uow, clock),
        rotate_webhook_secret=RotateWebhookSecret(
            uow, clock, default_grace=settings.webhooks.rotation_grace
        ),
        list_deliveries=ListDeliveries(uow),
        get_delivery=GetDelivery(uow),
        redeliver=Redeliver(uow, clock, resources.queue()),
        access=AccessServices(
            config=access_config(settings),
            authenticate=authenticate.execute,
            still_active=authenticate.still_active,
            limiter=RedisRateLimiter(resources.redis),
            tickets=RedisTickets(resources.redis, ttl=settings.auth.ticket_ttl),
        ),
        quotas=task_quotas(settings),
        create_key=CreateApiKey(uow, clock),
        list_keys=ListApiKeys(uow),
        revoke_key=RevokeApiKey(uow, clock),
        forget_key=authenticate.forget,
        audit_logs=ListAuditLogs(uow),
        decide_approval=DecideApproval(uow, clock),
        list_approvals=ListApprovals(uow),
    )


def access_config(settings: Settings) -> AccessConfig:
    limits = settings.limits
    return AccessConfig(
        auth_enabled=settings.auth.enabled,
        limits_enabled=limits.enabled,
        period=limits.period,
        requests={
            Role.ADMIN: limits.admin_requests,
            Role.MEMBER: limits.member_requests,
            Role.VIEWER: limits.viewer_requests,
        },
        anonymous_requests=limits.anonymous_requests,
        max_body_bytes=settings.api.max_body_bytes,
        hsts=settings.is_production,
    )


def task_quotas(settings: Settings) -> dict[Role, TaskQuota]:
    limits = settings.limits
    return {
        Role.ADMIN: TaskQuota(limits.admin_active_tasks, limits.admin_tokens_per_minute),
        Role.MEMBER: TaskQuota(limits.member_active_tasks, limits.member_tokens_per_minute),
    }


async def check_production_keys(resources: Resources) -> None:
    """Production refuses to serve with no key to get in with."""
    async with resources.unit_of_work() as uow:
        active = await uow.api_keys.count_active()
    if active == 0:
        raise ConfigurationError(
            "refusing to start in production: no active API key. Create one with "
            "`chatsys keys create --name admin --role admin`."
        )


def local_admin_key(settings: Settings, database_url: str) -> str:
    """`chatsys dev`: the local admin key, created on first run and kept in the data dir
    (readable by its owner only); made again if it was revoked or the file is gone."""
    path = settings.data_dir / "admin.key"
    existing = path.read_text().strip() if path.exists() else ""

    async def ensure() -> str:
        engine = create_engine(settings.database, database_url, role="cli")
        try:
            uow = SqlUnitOfWork(create_session_factory(engine))
            if existing:
                check = Authenticate(lambda: uow, SystemClock(), cache_seconds=0)
                if await check.execute(existing) is not None:
                    return existing
            _, full = await CreateApiKey(
                lambda: SqlUnitOfWork(create_session_factory(engine)), SystemClock()
            ).execute(name="local admin (chatsys dev)", role=Role.ADMIN, subject="local",
                      actor="chatsys dev")  # fmt: skip
            return full
        finally:
            await engine.dispose()

    key = asyncio.run(ensure())
    if key != existing:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(key + "\n")
        path.chmod(0o600)
    return key


async def create_key(
    settings: Settings, *, name: str, role: Role, subject: str | None
) -> tuple[ApiKey, str]:
    """For `chatsys keys create` and `chatsys dev`: a key straight into the database."""
    database_url, _ = service_urls(settings)
    engine = create_engine(settings.database, database_url, role="cli")
    try:
        uow = SqlUnitOfWork(create_session_factory(engine))
        return await CreateApiKey(lambda: uow, SystemClock()).execute(
            name=name, role=role, subject=subject, actor="cli"
        )
    finally:
        await engine.dispose()


def build_app(
    settings: Settings | None = None, *, shutdown_signals: bool = False, tune_gc: bool = False
) -> FastAPI:
    """The ASGI app. Resources are opened in its lifespan, so building it is cheap.
    ``tune_gc``: the server process settles its heap (``chatsys.infra.heap``)."""
    settings = settings or load_settings()
    configure_logging(settings)

    @contextlib.asynccontextmanager
    async def services() -> AsyncIterator[ApiServices]:
        resources = await Resources.open(settings, role="api")
        hub = RedisEventHub(resources.redis)
        try:
            if settings.is_production:
                await check_production_keys(resources)
            # The API's own manager (it imports no LiteLLM): it lists, registers and
            # debug-calls servers; workers keep their own pools.
            mcp = mcp_manager(settings, resources)
            try:
                built = api_services(resources, hub, mcp)
                if tune_gc:
                    settle_heap()
                yield built
            finally:
                await mcp.close()
        finally:
            try:
                await hub.close()
            finally:
                await resources.close()

    web = WebConfig(
        cors_origins=tuple(settings.api.cors_origins),
        trusted_hosts=tuple(settings.api.trusted_hosts),
        hsts=settings.is_production,
    )
    return create_app(services, version=__version__, shutdown_signals=shutdown_signals, web=web)


def app_factory() -> FastAPI:
    """Entry point for ``uvicorn --factory chatsys.bootstrap:app_factory``: the server
    process, whose SIGTERM/SIGINT first end live streams with "going away"."""
    return build_app(shutdown_signals=True, tune_gc=True)


def build_worker(
    settings: Settings | None = None, *, burst: bool = False, tune_gc: bool = False
) -> Worker:
    """The arq worker; its start-up hook is the worker's composition root.
    ``tune_gc``: the worker process settles its heap (``chatsys.infra.heap``)."""
    settings = settings or load_settings()
    configure_logging(settings)
    _, redis_url = service_urls(settings)
    worker_id = new_worker_id()

    async def on_startup(ctx: dict[str, Any]) -> None:
        from chatsys.agents.agent import RoleAgent
        from chatsys.agents.gateway import LiteLLMGateway
        from chatsys.agents.mcp.invoker import McpToolInvoker
        from chatsys.domain.planning.executor import PlanExecutor

        resources = await Resources.open(settings, role="worker")
        heartbeat = WorkerHeartbeat(
            resources.redis,
            worker_id,
            interval=settings.worker.heartbeat_interval,
            ttl=settings.worker.heartbeat_ttl,
        )
        uow = resources.unit_of_work
        dispatcher = Dispatcher(uow, resources.queue())
        callbacks = webhook_callbacks(resources)
        llm = settings.llm
        gateway = LiteLLMGateway(gateway_config(settings))
        analyzer: TaskAnalyzer = (
            LLMAnalyzer(gateway) if settings.features.llm_nlu else RulesTaskAnalyzer()
        )
        mcp = mcp_manager(settings, resources)
        await mcp.start()
        executor = PlanExecutor(
            RoleAgent(gateway, McpToolInvoker(mcp)),
            max_parallel=llm.max_parallel_steps,
            max_attempts=llm.step_attempts,
            backoff=llm.step_backoff,
        )
        run = RunTask(
            uow,
            SystemClock(),
            analyzer=analyzer,
            planner=Planner(),
            executor=executor,
            dispatcher=dispatcher,
            callbacks=callbacks,
            worker_id=worker_id,
            heartbeat_interval=settings.worker.task_heartbeat,
            stale_after=settings.worker.task_stale_after,
            max_attempts=settings.worker.task_max_attempts,
            max_runtime=settings.worker.task_timeout,
            approval_timeout=settings.mcp.approval_timeout,
            approval_poll=settings.mcp.approval_poll_interval,
        )
        sweeper = RequeueStale(
            uow,
            dispatcher,
            SystemClock(),
            callbacks=callbacks,
            stale_after=settings.worker.task_stale_after,
        )
        hooks = settings.webhooks
        deliver = DeliverWebhook(
            uow,
            SystemClock(),
            webhook_sender(settings),
            resources.queue(),
            retry_policy(settings),
            lease=hooks.lease,
        )
        relay = RelayWebhooks(
            uow, resources.queue(), grace=hooks.relay_grace, redispatch_after=hooks.redispatch_after
        )
        maintenance = jobs.Maintenance(
            dispatcher, sweeper, relay, interval=settings.worker.maintenance_interval
        )
        if tune_gc:  # before the heartbeat, so the pause is over before it reports ready
            settle_heap()
        await heartbeat.start()
        maintenance.start()
        ctx.update(
            resources=resources,
            engine=resources.engine,
            heartbeat=heartbeat,
            maintenance=maintenance,
            mcp=mcp,
            worker_id=worker_id,
            run_task=run,
            deliver_webhook=deliver,
        )
        log.info("chatsys.worker.started", worker_id=worker_id, queue=settings.worker.queue_name)

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        heartbeat: WorkerHeartbeat | None = ctx.get("heartbeat")
        resources: Resources | None = ctx.get("resources")
        maintenance: jobs.Maintenance | None = ctx.get("maintenance")
        if maintenance is not None:
            await maintenance.stop()
        if heartbeat is not None:
            await heartbeat.stop()
        mcp: McpManager | None = ctx.get("mcp")
        if mcp is not None:  # every MCP server process is stopped here
            await mcp.close()
        if resources is not None:
            await resources.close()
        log.info("chatsys.worker.stopped", worker_id=worker_id)

    return Worker(
        functions=[
            func(jobs.ping, name="chatsys.ping", timeout=30, max_tries=1),
            # The task enforces its own time limit; arq's must never fire first.
            func(
                jobs.run_task, name=RUN_TASK, max_tries=3, timeout=settings.worker.task_timeout + 60
            ),
            # Results are not kept: a job id is free again once its attempt is over, so the
            # relay can always re-send it; the delivery row is the record.
            func(
                jobs.deliver_webhook,
                name=DELIVER_WEBHOOK,
                max_tries=3,
                keep_result=0,
                timeout=settings.webhooks.timeout + settings.webhooks.connect_timeout + 30,
            ),
        ],
        queue_name=settings.worker.queue_name,
        redis_settings=arq_redis_settings(redis_url),
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        max_jobs=settings.worker.max_jobs,
        job_timeout=settings.worker.job_timeout,
        burst=burst,
        handle_signals=not burst,
        health_check_interval=max(settings.worker.heartbeat_interval, 1.0),
        poll_delay=settings.worker.poll_delay,
    )
