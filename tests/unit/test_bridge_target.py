"""Where `chatsys mcp` sends its calls and which key it sends, when none is given: the
configured API port on this machine, and the data dir's local admin key, only to a
local API."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from chatsys.bootstrap.cli import bridge_target
from chatsys.infra.settings import ApiSettings, McpSettings, Settings


def configured(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_url: str | None = None,
    api_key: str | None = None,
) -> Settings:
    return Settings(
        data_dir=data_dir,
        api=ApiSettings(host=host, port=port),
        mcp=McpSettings(api_url=api_url, api_key=SecretStr(api_key) if api_key else None),
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    (tmp_path / "admin.key").write_text("csk_local_admin\n")
    return tmp_path


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8123"),
        ("0.0.0.0", "http://127.0.0.1:8123"),  # noqa: S104 (the API binds all; we call loopback)
        ("::", "http://127.0.0.1:8123"),
        ("::1", "http://[::1]:8123"),
        ("localhost", "http://localhost:8123"),
    ],
)
def test_no_url_means_this_machine_at_the_configured_port(
    data_dir: Path, host: str, url: str
) -> None:
    target = bridge_target(configured(data_dir, host=host, port=8123))
    assert target.api_url == url
    assert target.api_key == "csk_local_admin"
    assert str(data_dir / "admin.key") in target.unauthorized_hint


def test_the_url_flag_wins_over_the_setting(data_dir: Path) -> None:
    settings = configured(data_dir, api_url="http://127.0.0.1:9000")
    assert bridge_target(settings).api_url == "http://127.0.0.1:9000"
    assert bridge_target(settings, "http://127.0.0.1:9001").api_url == "http://127.0.0.1:9001"


def test_a_configured_key_wins_over_the_local_one(data_dir: Path) -> None:
    target = bridge_target(configured(data_dir, api_key="csk_configured"))
    assert target.api_key == "csk_configured"
    assert "CHATSYS_MCP_API_KEY" in target.unauthorized_hint


@pytest.mark.parametrize(
    "url", ["https://chatsys.example.com", "http://10.0.0.5:8000", "http://192.168.1.2:8000"]
)
def test_the_local_admin_key_never_goes_to_another_machine(data_dir: Path, url: str) -> None:
    target = bridge_target(configured(data_dir, api_url=url))
    assert target.api_key is None
    assert "CHATSYS_MCP_API_KEY" in target.unauthorized_hint
    assert bridge_target(configured(data_dir, api_url=url, api_key="k")).api_key == "k"


def test_no_key_file_means_no_key_and_a_hint_naming_both_ways(tmp_path: Path) -> None:
    target = bridge_target(configured(tmp_path))
    assert target.api_key is None
    assert "CHATSYS_MCP_API_KEY" in target.unauthorized_hint
    assert "chatsys dev" in target.unauthorized_hint
    assert str(tmp_path / "admin.key") in target.unauthorized_hint
