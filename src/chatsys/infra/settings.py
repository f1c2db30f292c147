"""Configuration, split by concern.

Every group reads its own ``CHATSYS_*`` environment variables (and ``.env``).
Settings are loaded once, in the composition root, and passed down; the domain
never sees them.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix=prefix,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )


def _empty_is_none(value: object) -> object:
    return None if value == "" else value


# An empty variable (CHATSYS_DATABASE_URL=) means "not set", not "the empty string".
OptionalSecret = Annotated[SecretStr | None, BeforeValidator(_empty_is_none)]
OptionalStr = Annotated[str | None, BeforeValidator(_empty_is_none)]


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"
    TEST = "test"


class DatabaseSettings(BaseSettings):
    """``CHATSYS_DATABASE_*``. No URL means: start the embedded Postgres."""

    model_config = _config("CHATSYS_DATABASE_")

    url: OptionalSecret = Field(
        default=None,
        description="postgresql+asyncpg://user:password@host:port/db; "
        "empty starts the embedded Postgres",
    )
    pool_size: int = Field(default=10, ge=1, le=200)
    max_overflow: int = Field(default=10, ge=0, le=200)
    pool_timeout: float = Field(default=10.0, gt=0)
    ping_after_idle: float = Field(
        default=5.0, ge=0, description="ping a pooled connection idle this long before use"
    )
    echo: bool = False


class RedisSettings(BaseSettings):
    """``CHATSYS_REDIS_*``. No URL means: start the embedded redis-server."""

    model_config = _config("CHATSYS_REDIS_")

    url: OptionalSecret = Field(
        default=None,
        description="redis://[:password@]host:port/db; empty starts the embedded redis-server",
    )


class ApiSettings(BaseSettings):
    """``CHATSYS_API_*``: where the HTTP API listens."""

    model_config = _config("CHATSYS_API_")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    max_input_bytes: int = Field(default=32 * 1024, ge=1, le=1024 * 1024)
    max_body_bytes: int = Field(
        default=256 * 1024, ge=1024, le=64 * 1024 * 1024, description="largest request body"
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="origins allowed by CORS, JSON list; [] = no CORS"
    )
    trusted_hosts: list[str] = Field(
        default_factory=list,
        description='Host headers accepted, JSON list (e.g. ["api.example.com"]); '
        "required in production",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or networks (CIDR) of the proxies whose X-Forwarded-For and "
        '-Proto are believed, JSON list (e.g. ["127.0.0.1"]); [] = none',
    )
    max_connections: int = Field(
        default=1000, ge=0, description="connections + requests per process, then 503; 0: no cap"
    )
    keepalive_timeout: int = Field(default=5, ge=1, le=300, description="idle keep-alive, s")
    header_timeout: float = Field(default=5.0, gt=0, le=300, description="a request head's time")
    body_timeout: float = Field(default=8.0, gt=0, le=3600, description="a request body's time")
    max_header_bytes: int = Field(default=32 * 1024, ge=1024, le=1024 * 1024)
    max_headers: int = Field(default=100, ge=10, le=1000)


class AuthSettings(BaseSettings):
    """``CHATSYS_AUTH_*``: API keys."""

    model_config = _config("CHATSYS_AUTH_")

    enabled: bool = Field(
        default=True,
        description="require an API key on /v1; off (development and tests only) makes every "
        "caller the local admin",
    )
    cache_seconds: float = Field(
        default=5.0, ge=0, le=300, description="a verified key is trusted this long per process"
    )
    ticket_ttl: float = Field(default=300.0, gt=0, le=3600, description="stream tickets' life")


class LimitSettings(BaseSettings):
    """``CHATSYS_LIMITS_*``: per-key quotas, by role, shared by all API processes."""

    model_config = _config("CHATSYS_LIMITS_")

    enabled: bool = True
    period: float = Field(default=60.0, gt=0, description="the window of the request rates")
    admin_requests: int = Field(default=6000, ge=1, description="requests per period")
    member_requests: int = Field(default=600, ge=1)
    viewer_requests: int = Field(default=300, ge=1)
    anonymous_requests: int = Field(
        default=60, ge=1, description="per client IP, without a valid key (docs, failed auth)"
    )
    admin_active_tasks: int = Field(default=0, ge=0, description="0 = no cap")
    member_active_tasks: int = Field(default=20, ge=0, description="queued+running at once")
    admin_tokens_per_minute: int = Field(default=0, ge=0, description="0 = no cap")
    member_tokens_per_minute: int = Field(default=200_000, ge=0)


class StreamSettings(BaseSettings):
    """``CHATSYS_STREAM_*``: live event streams (SSE and WebSocket)."""

    model_config = _config("CHATSYS_STREAM_")

    buffer: int = Field(
        default=1024,
        ge=8,
        le=100_000,
        description="events held for one subscriber; a subscriber that falls further behind "
        "is disconnected (WebSocket close 4008) and resumes with after=",
    )
    keepalive: float = Field(
        default=15.0, gt=0, description="seconds of quiet before an SSE keep-alive comment"
    )
    close_timeout: float = Field(
        default=10.0, gt=0, description="how long a stalled client gets to take its close frame"
    )
    max_subscriptions: int = Field(
        default=100, ge=1, le=10_000, description="subscriptions per /v1/ws connection"
    )
    max_frame_bytes: int = Field(
        default=64 * 1024, ge=1024, le=16 * 1024 * 1024, description="largest WebSocket frame"
    )


class WorkerSettings(BaseSettings):
    """``CHATSYS_WORKER_*``: the arq worker pool. Task runs and webhook attempts have a
    queue and a slot pool each, so a backlog of slow receivers never holds up a task."""

    model_config = _config("CHATSYS_WORKER_") | SettingsConfigDict(populate_by_name=True)

    queue_name: str = Field(
        default="chatsys:queue",
        description="arq queue of task runs (and of jobs queued before the queues split)",
    )
    webhook_queue_name: str = Field(
        default="chatsys:webhooks",
        description="arq queue of a webhooks-only worker (pings, and attempt jobs of old versions)",
    )
    task_concurrency: int = Field(
        default=10,
        ge=1,
        le=1000,
        validation_alias=AliasChoices(
            "CHATSYS_WORKER_TASK_CONCURRENCY", "CHATSYS_WORKER_MAX_JOBS"
        ),  # MAX_JOBS: its name before the split
        description="task runs one worker process runs at once",
    )
    high_priority_slots: int = Field(
        default=2,
        ge=0,
        le=100,
        description="task slots beyond task_concurrency that only high-priority runs take"
        " (enough for the high runs under way at once: their rate times their duration)",
    )
    priority_lead: float = Field(
        default=60.0,
        ge=0,
        le=86400,
        description="seconds a task's job goes ahead of the next lower priority's",
    )
    webhook_concurrency: int = Field(
        default=50, ge=1, le=1000, description="webhook attempts one worker process makes at once"
    )
    job_timeout: float = Field(default=900.0, gt=0)
    heartbeat_interval: float = Field(default=5.0, gt=0)
    heartbeat_ttl: float = Field(default=15.0, gt=0)
    poll_delay: float = Field(
        default=0.01, gt=0, description="seconds between queue polls while jobs keep coming"
    )
    idle_poll: float = Field(
        default=1.0,
        gt=0,
        description="an idle worker's longest wait between queue polls (an enqueue through "
        "chatsys wakes it at once; this bounds the wait for a job no one announced)",
    )
    task_heartbeat: float = Field(default=0.5, gt=0, description="running-task heartbeat")
    task_stale_after: float = Field(
        default=10.0, gt=0, description="lapsed task heartbeat: re-queued whatever liveness says"
    )
    liveness_interval: float = Field(
        default=1.0, gt=0, description="seconds between a worker's liveness stamps (a thread)"
    )
    liveness_ttl: float = Field(
        default=3.0, gt=0, description="a worker with no stamp for this long is taken for dead"
    )
    takeover_grace: float = Field(
        default=2.0,
        gt=0,
        description="a dead worker's task is re-queued once its heartbeat is this old",
    )
    task_max_attempts: int = Field(default=5, ge=1)
    task_timeout: float = Field(default=1800.0, gt=0, description="one attempt's time limit")
    maintenance_interval: float = Field(
        default=1.0, gt=0, description="seconds between sweeps (dead workers, outbox, webhooks)"
    )

    @model_validator(mode="after")
    def _takeover_is_safe(self) -> WorkerSettings:
        if self.liveness_ttl < 2 * self.liveness_interval:
            raise ValueError("liveness_ttl must be at least twice liveness_interval")
        if self.takeover_grace < 2 * self.task_heartbeat:
            raise ValueError("takeover_grace must be at least twice task_heartbeat")
        if self.task_stale_after < self.takeover_grace:
            raise ValueError("task_stale_after must not be shorter than takeover_grace")
        return self


class LLMSettings(BaseSettings):
    """``CHATSYS_MODEL`` and ``CHATSYS_LLM_*``. No model means the built-in offline model."""

    model_config = _config("CHATSYS_LLM_")

    model: OptionalStr = Field(
        default=None,
        validation_alias=AliasChoices("CHATSYS_MODEL", "CHATSYS_LLM_MODEL"),
        description="LiteLLM model name for every role (e.g. openai/gpt-4o-mini); "
        "empty uses the offline model",
    )
    role_models: dict[str, str] = Field(
        default_factory=dict,
        description='per-role overrides as JSON, e.g. {"reviewer": "anthropic/claude-sonnet-4"}',
    )
    fallbacks: list[str] = Field(
        default_factory=list,
        description="models tried in order when the primary fails, JSON list",
    )
    api_base: OptionalStr = None
    api_key: OptionalSecret = None
    timeout: float = Field(default=120.0, gt=0)
    num_retries: int = Field(default=2, ge=0, le=10)
    allowed_fails: int = Field(default=3, ge=1)
    cooldown_seconds: float = Field(default=30.0, ge=0)
    max_parallel_steps: int = Field(default=4, ge=1, le=32)
    step_attempts: int = Field(default=3, ge=1, le=10)
    step_backoff: float = Field(default=0.5, ge=0)
    preload: bool = Field(
        default=False,
        description="a worker imports LiteLLM right after it starts (in the background) "
        "rather than at its first model call: the first run does not wait for it, the idle "
        "worker holds ~100 MiB more",
    )

    @property
    def mode(self) -> Literal["offline", "provider"]:
        return "offline" if self.model is None and not self.role_models else "provider"


class McpSettings(BaseSettings):
    """``CHATSYS_MCP_*``: MCP servers and the limits of their tools."""

    model_config = _config("CHATSYS_MCP_")

    servers: list[dict[str, Any]] = Field(
        default_factory=list,
        description='servers as a JSON list, e.g. [{"name": "time", "command": "uvx", '
        '"args": ["mcp-server-time"]}]',
    )
    config_file: Annotated[Path | None, BeforeValidator(_empty_is_none)] = Field(
        default=None,
        description='a JSON file: {"servers": [...]} or {"mcpServers": {"name": {...}}}',
    )
    call_timeout: float = Field(default=30.0, gt=0, description="seconds per tool call")
    start_timeout: float = Field(default=30.0, gt=0, description="seconds to start + list")
    max_result_chars: int = Field(default=20_000, ge=100, description="a tool result's cap")
    health_interval: float = Field(default=15.0, gt=0, description="seconds between pings")
    restart_backoff_max: float = Field(default=60.0, gt=0)
    sync_interval: float = Field(
        default=1.0, ge=0, description="how often servers added through the API are picked up"
    )
    workspace_root: Annotated[Path | None, BeforeValidator(_empty_is_none)] = Field(
        default=None, description="task workspaces (default: <data dir>/workspaces)"
    )
    workspace_roles: list[str] = Field(
        default_factory=lambda: ["operator"], description="roles given the workspace tools"
    )
    api_url: OptionalStr = Field(
        default=None,
        description="the chatsys API `chatsys mcp` calls (default: this machine, at "
        "CHATSYS_API_PORT)",
    )
    api_key: OptionalSecret = Field(
        default=None,
        description="the key `chatsys mcp` sends (default, to a local API only: the data "
        "dir's admin.key, written by `chatsys dev`)",
    )
    workspace_policy: Literal["auto", "ask", "deny"] = Field(
        default="auto", description="the workspace tools' policy (auto, ask, deny)"
    )
    workspace_tool_policies: dict[str, Literal["auto", "ask", "deny"]] = Field(
        default_factory=dict,
        description='per workspace tool overrides, e.g. {"write_file": "ask"}',
    )
    approval_timeout: float = Field(
        default=600.0,
        gt=0,
        description="seconds a tool approval waits for a decision before it expires (denied)",
    )
    approval_poll_interval: float = Field(
        default=0.5, gt=0, description="how often a waiting worker looks for the decision"
    )


class WebhookSettings(BaseSettings):
    """``CHATSYS_WEBHOOKS_*``: callbacks when tasks end."""

    model_config = _config("CHATSYS_WEBHOOKS_")

    allow_private_networks: bool = Field(
        default=False,
        description="let webhooks reach loopback, private, link-local and other non-public "
        "addresses (local development and tests); metadata, multicast and unspecified "
        "addresses stay refused",
    )
    retry_schedule: list[float] = Field(
        default_factory=lambda: [0.0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400],
        min_length=1,
        max_length=50,
        description="seconds before each attempt, the first one included (JSON list)",
    )
    retry_jitter: float = Field(default=0.1, ge=0, lt=1, description="+/- fraction per delay")
    connect_timeout: float = Field(default=5.0, gt=0, le=60)
    timeout: float = Field(default=15.0, gt=0, le=120, description="one attempt, in all")
    max_response_bytes: int = Field(default=64 * 1024, ge=0, le=10 * 1024 * 1024)
    max_url_length: int = Field(default=2048, ge=20, le=2048)
    lease: float = Field(default=60.0, gt=0, description="an attempt's hold on its delivery")
    poll_interval: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="a worker's webhook slots look for due deliveries at least this often",
    )
    max_in_flight_per_endpoint: int = Field(
        default=8,
        ge=1,
        le=1000,
        description="attempts under way to one receiver at once, all workers together",
    )
    breaker_threshold: int = Field(
        default=5, ge=1, le=1000, description="failed attempts in a row that pause an endpoint"
    )
    breaker_backoff: float = Field(
        default=30.0, gt=0, description="first pause; it doubles with every failed probe"
    )
    breaker_max_backoff: float = Field(default=600.0, gt=0, description="longest pause")
    rotation_grace: float = Field(
        default=86400.0, ge=0, le=7 * 86400, description="old secret's life after a rotation"
    )

    @field_validator("retry_schedule")
    @classmethod
    def _non_negative(cls, value: list[float]) -> list[float]:
        if any(v < 0 for v in value):
            raise ValueError("retry delays must not be negative")
        return value


class FeatureFlags(BaseSettings):
    """``CHATSYS_FEATURE_*``: switch whole subsystems on and off."""

    model_config = _config("CHATSYS_FEATURE_")

    nlu: bool = True
    orchestration: bool = True
    audit: bool = True
    plugins: bool = True
    hot_reload: bool = False
    llm_nlu: bool = Field(
        default=False, description="workers analyse requests with the model (rules on failure)"
    )


class Settings(BaseSettings):
    """All of chatsys' configuration. ``Settings()`` reads the environment."""

    model_config = _config("CHATSYS_")

    environment: Environment = Environment.DEVELOPMENT
    data_dir: Path = Field(
        default=Path(".chatsys"),
        description="where the embedded Postgres and Redis keep their data",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "console", "json"] = "auto"

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    mcp: McpSettings = Field(default_factory=McpSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    features: FeatureFlags = Field(default_factory=FeatureFlags)

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    def problems_for_production(self) -> list[str]:
        """What stops this configuration from running in production (empty when fine)."""
        problems: list[str] = []
        if self.database.url is None:
            problems.append("CHATSYS_DATABASE_URL is required in production (no embedded Postgres)")
        if self.redis.url is None:
            problems.append("CHATSYS_REDIS_URL is required in production (no embedded Redis)")
        if not self.auth.enabled:
            problems.append("CHATSYS_AUTH_ENABLED=false is not allowed in production")
        if not self.api.trusted_hosts or "*" in self.api.trusted_hosts:
            problems.append(
                "CHATSYS_API_TRUSTED_HOSTS must name the API's host names in production"
            )
        if "*" in self.api.trusted_proxies:
            problems.append("CHATSYS_API_TRUSTED_PROXIES must not be * in production")
        if "*" in self.api.cors_origins:
            problems.append("CHATSYS_API_CORS_ORIGINS must not be * in production")
        return problems
