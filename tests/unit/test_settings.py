from __future__ import annotations

import pytest

from chatsys.bootstrap import ConfigurationError, load_settings
from chatsys.bootstrap.components import service_urls
from chatsys.infra.http_server import server_config
from chatsys.infra.settings import Settings


def test_environment_variables_fill_each_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATSYS_DATABASE_URL", "postgresql+asyncpg://u:p@db:5432/chatsys")
    monkeypatch.setenv("CHATSYS_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("CHATSYS_MODEL", "openai/gpt-4o-mini")
    monkeypatch.setenv("CHATSYS_WORKER_MAX_JOBS", "4")
    monkeypatch.setenv("CHATSYS_FEATURE_AUDIT", "false")
    settings = Settings()
    assert service_urls(settings) == (
        "postgresql+asyncpg://u:p@db:5432/chatsys",
        "redis://cache:6379/0",
    )
    assert settings.llm.mode == "provider"
    assert settings.worker.task_concurrency == 4  # its name before the split still works
    assert settings.features.audit is False


def test_empty_urls_mean_embedded_and_the_url_never_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATSYS_DATABASE_URL", "")
    monkeypatch.setenv("CHATSYS_REDIS_URL", "redis://:hunter2@cache:6379/0")
    settings = Settings()
    assert settings.database.url is None
    assert "hunter2" not in repr(settings)
    assert settings.llm.mode == "offline"


def test_a_server_process_without_urls_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHATSYS_DATABASE_URL", raising=False)
    monkeypatch.delenv("CHATSYS_REDIS_URL", raising=False)
    with pytest.raises(ConfigurationError, match="chatsys dev"):
        service_urls(Settings())


def test_production_refuses_embedded_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATSYS_ENVIRONMENT", "production")
    monkeypatch.delenv("CHATSYS_DATABASE_URL", raising=False)
    monkeypatch.setenv("CHATSYS_REDIS_URL", "redis://cache:6379/0")
    with pytest.raises(ConfigurationError, match="CHATSYS_DATABASE_URL is required"):
        load_settings()


def test_invalid_values_are_rejected_with_the_variable_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHATSYS_API_PORT", "99999")
    with pytest.raises(ValueError, match="port"):
        Settings()


def test_production_refuses_auth_off_open_hosts_and_wildcard_cors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHATSYS_ENVIRONMENT", "production")
    monkeypatch.setenv("CHATSYS_DATABASE_URL", "postgresql+asyncpg://db/chatsys")
    monkeypatch.setenv("CHATSYS_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("CHATSYS_AUTH_ENABLED", "false")
    monkeypatch.setenv("CHATSYS_API_CORS_ORIGINS", '["*"]')
    monkeypatch.delenv("CHATSYS_API_TRUSTED_HOSTS", raising=False)
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    message = str(refused.value)
    assert "CHATSYS_AUTH_ENABLED=false is not allowed in production" in message
    assert "CHATSYS_API_TRUSTED_HOSTS must name the API's host names" in message
    assert "CHATSYS_API_CORS_ORIGINS must not be *" in message
    monkeypatch.setenv("CHATSYS_AUTH_ENABLED", "true")
    monkeypatch.setenv("CHATSYS_API_CORS_ORIGINS", '["https://app.example.com"]')
    monkeypatch.setenv("CHATSYS_API_TRUSTED_HOSTS", '["api.example.com"]')
    assert load_settings().is_production


def test_forwarded_headers_are_believed_only_from_the_listed_proxies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    nobody = server_config("chatsys.bootstrap:app_factory", Settings().api)
    assert nobody.proxy_headers is False  # uvicorn's default would trust loopback
    assert nobody.forwarded_allow_ips == []
    monkeypatch.setenv("CHATSYS_API_TRUSTED_PROXIES", '["127.0.0.1", "10.0.0.0/8"]')
    behind = server_config("chatsys.bootstrap:app_factory", Settings().api)
    assert behind.proxy_headers is True
    assert behind.forwarded_allow_ips == ["127.0.0.1", "10.0.0.0/8"]
    assert (behind.limit_concurrency, behind.timeout_keep_alive) == (1000, 5)
    assert behind.limits.header_timeout == 5.0
    assert behind.limits.body_timeout == 8.0


def test_production_refuses_trusting_every_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATSYS_ENVIRONMENT", "production")
    monkeypatch.setenv("CHATSYS_DATABASE_URL", "postgresql+asyncpg://db/chatsys")
    monkeypatch.setenv("CHATSYS_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("CHATSYS_API_TRUSTED_HOSTS", '["api.example.com"]')
    monkeypatch.setenv("CHATSYS_API_TRUSTED_PROXIES", '["*"]')
    with pytest.raises(ConfigurationError, match="CHATSYS_API_TRUSTED_PROXIES must not be"):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("CHATSYS_WORKER_LIVENESS_TTL", "1.5", "liveness_ttl must be at least twice"),
        ("CHATSYS_WORKER_TAKEOVER_GRACE", "0.5", "takeover_grace must be at least twice"),
        ("CHATSYS_WORKER_TASK_STALE_AFTER", "1", "task_stale_after must not be shorter"),
    ],
)
def test_takeover_settings_that_would_declare_a_live_worker_dead_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, complaint: str
) -> None:
    assert Settings().worker.liveness_ttl == 3.0  # the defaults hold together
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=complaint):
        Settings()
