"""Settings -> components: what every process builds from its settings (resources,
the LLM gateway's config, the MCP manager, webhook and access parts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chatsys import __version__
from chatsys.agents.config import GatewayConfig
from chatsys.agents.mcp.config import McpDefaults, ServerConfig, load_servers
from chatsys.agents.mcp.manager import McpManager
from chatsys.agents.mcp.workspace import SERVER_NAME, Workspaces, build_workspace_server
from chatsys.agents.profiles import PROFILES
from chatsys.api.access.middleware import AccessConfig
from chatsys.api.tasks.schemas import task_json
from chatsys.domain.access.model import Role
from chatsys.domain.shared.errors import InvalidInput
from chatsys.domain.tasks.ending import Callbacks
from chatsys.domain.tasks.submission import TaskQuota
from chatsys.domain.webhooks.model import RetryPolicy
from chatsys.domain.webhooks.ports import DeliveryNudge
from chatsys.infra.db.engine import create_engine, create_session_factory
from chatsys.infra.db.unit_of_work import SqlUnitOfWork
from chatsys.infra.events import RedisEventPublisher
from chatsys.infra.logging import get_logger
from chatsys.infra.mcp_store import RedisMcpStore
from chatsys.infra.outages import REDIS, OutageMonitor
from chatsys.infra.queue import ArqJobQueue
from chatsys.infra.redis import redis_client
from chatsys.infra.settings import Settings
from chatsys.infra.webhook_http import AddressVetter, HttpWebhookSender
from chatsys.infra.webhook_slots import NO_SLOTS

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


@dataclass(slots=True)
class Resources:
    """What one process opens at start-up and closes at shutdown."""

    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    redis: ArqRedis
    publisher: RedisEventPublisher
    outages: OutageMonitor
    single_statement_sessions: async_sessionmaker[AsyncSession]

    @classmethod
    async def open(cls, settings: Settings, *, role: str) -> Resources:
        database_url, redis_url = service_urls(settings)
        engine = create_engine(settings.database, database_url, role=role)
        redis = redis_client(redis_url, queue_name=settings.worker.queue_name)
        outages = OutageMonitor.of(engine, redis)
        try:
            await redis.ping()
        except BaseException as exc:
            # Redis not there yet: the process starts anyway, reports the outage once
            # and is not ready until it answers. Any other error (a wrong password) ends it.
            if not isinstance(exc, Exception) or outages.report(exc) != REDIS:
                await outages.close()
                await redis.aclose()
                await engine.dispose()
                raise
        publisher = RedisEventPublisher(redis, outages=outages)
        return cls(settings, engine, create_session_factory(engine), redis, publisher, outages,
                   create_session_factory(engine, autocommit=True))  # fmt: skip

    async def close(self) -> None:
        try:
            await self.outages.close()
            await self.redis.aclose()
        finally:
            await self.engine.dispose()

    def unit_of_work(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.session_factory, self.publisher)

    def single_statement(self) -> SqlUnitOfWork:
        """A unit of work for one statement (its own transaction: no BEGIN, no COMMIT)."""
        return SqlUnitOfWork(self.single_statement_sessions, self.publisher)

    def queue(self) -> ArqJobQueue:
        worker = self.settings.worker
        return ArqJobQueue(
            self.redis,
            queue_name=worker.queue_name,
            priority_lead=worker.priority_lead,
        )


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


def webhook_callbacks(resources: Resources, nudge: DeliveryNudge = NO_SLOTS) -> Callbacks:
    """What records (in the task's transaction) a task's webhooks and tells ``nudge``
    (the process' webhook slots, if it has any) that they are due."""
    return Callbacks(task_json, nudge, retry_policy(resources.settings))


def webhook_sender(settings: Settings) -> HttpWebhookSender:
    webhooks = settings.webhooks
    return HttpWebhookSender(
        address_vetter(settings),
        connect_timeout=webhooks.connect_timeout,
        timeout=webhooks.timeout,
        max_response_bytes=webhooks.max_response_bytes,
        user_agent=f"chatsys-webhooks/{__version__}",
        connections_per_pool=webhooks.max_in_flight_per_endpoint,
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
