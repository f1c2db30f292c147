"""Every change made through the API is in the audit trail, naming its actor and target
and holding no secret: webhook endpoints and redeliveries (written in the change's own
transaction) and MCP servers and tools (state in Redis, written right after the change).
Driven in process with real keys, on real Postgres and Redis."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from chatsys.bootstrap.cli import create_key
from chatsys.domain.access.model import Role
from chatsys.infra.settings import (
    AuthSettings,
    LimitSettings,
    McpSettings,
    Settings,
    WebhookSettings,
)
from tests.support import ROOT

HOOK = "http://127.0.0.1:9/hook"  # allowed below; nothing is ever sent in this test
MCP_ENV_SECRET = "mcp-env-value-that-must-stay-out-of-the-audit-trail"
FAKE_SERVER = {
    "name": "audited",
    "command": sys.executable,
    "args": ["-m", "tests.fakes.mcp_server"],
    "cwd": str(ROOT),
    "timeout": 5,
    "env": {"TOKEN": MCP_ENV_SECRET},
}


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    settings.auth = AuthSettings(enabled=True, cache_seconds=5)
    settings.limits = LimitSettings(enabled=False)
    settings.webhooks = WebhookSettings(allow_private_networks=True)
    settings.mcp = McpSettings(servers=[], workspace_root=tmp_path / "workspaces", sync_interval=0)
    return settings


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def key_id(client: httpx.AsyncClient, key: str) -> str:
    me = await client.get("/v1/me", headers=bearer(key))
    assert me.status_code == 200, me.text
    return str(me.json()["key_id"])


async def fail_delivery(settings: Settings, delivery_id: str) -> None:
    """End a delivery as a dead letter (no worker runs in this test)."""
    assert settings.database.url is not None
    engine = create_async_engine(settings.database.url.get_secret_value())
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE webhook_deliveries SET status = 'failed', finished_at = now(), "
                     "next_attempt_at = NULL WHERE id = :i"),
                {"i": delivery_id},
            )  # fmt: skip
    finally:
        await engine.dispose()


async def test_webhook_and_mcp_changes_are_audited_with_their_actor_and_no_secret(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    _, admin_key = await create_key(settings, name="root", role=Role.ADMIN, subject="root")
    _, member_key = await create_key(settings, name="m", role=Role.MEMBER, subject="mia")
    root, member = bearer(admin_key), bearer(member_key)
    admin_actor = f"key:{await key_id(client, admin_key)}"
    member_actor = f"key:{await key_id(client, member_key)}"
    secrets: list[str] = [admin_key, member_key, MCP_ENV_SECRET]

    # Webhooks, by a member.
    made = await client.post("/v1/webhooks", json={"url": HOOK}, headers=member)
    assert made.status_code == 201, made.text
    endpoint = made.json()["id"]
    secrets.append(made.json()["secret"])
    rotated = await client.post(f"/v1/webhooks/{endpoint}/rotate-secret", headers=member)
    assert rotated.status_code == 200, rotated.text
    secrets.append(rotated.json()["secret"])
    task = (await client.post("/v1/tasks", json={"input": "a"}, headers=member)).json()["id"]
    assert (await client.post(f"/v1/tasks/{task}/cancel", headers=member)).status_code == 200
    [delivery] = (await client.get("/v1/webhook-deliveries", headers=member)).json()["items"]
    await fail_delivery(settings, delivery["id"])
    again = await client.post(f"/v1/webhook-deliveries/{delivery['id']}/redeliver", headers=member)
    assert again.status_code == 202, again.text
    assert (await client.delete(f"/v1/webhooks/{endpoint}", headers=member)).status_code == 204
    # A refused change leaves no entry.
    assert (await client.delete(f"/v1/webhooks/{endpoint}", headers=member)).status_code == 404

    # MCP servers and tools, by an admin.
    added = await client.post("/v1/mcp/servers", json=FAKE_SERVER, headers=root)
    assert added.status_code == 201, added.text
    assert added.json()["state"] == "ready", added.text
    accepted = await client.post("/v1/mcp/servers/audited/tools/echo/accept", headers=root)
    assert accepted.status_code == 200, accepted.text
    called = await client.post(
        "/v1/mcp/servers/audited/tools/echo/call",
        json={"arguments": {"text": "hello"}},
        headers=root,
    )
    assert called.status_code == 200, called.text
    assert (await client.delete("/v1/mcp/servers/audited", headers=root)).status_code == 204
    assert (await client.delete("/v1/mcp/servers/audited", headers=root)).status_code == 404

    page = await client.get("/v1/audit-logs", params={"limit": 500}, headers=root)
    assert page.status_code == 200, page.text
    entries: list[dict[str, Any]] = page.json()["items"]
    audited = [
        (e["action"], e["actor"], e["target"])
        for e in reversed(entries)
        if e["action"].startswith(("webhook.", "mcp."))
    ]
    assert audited == [
        ("webhook.create", member_actor, f"webhook:{endpoint}"),
        ("webhook.rotate_secret", member_actor, f"webhook:{endpoint}"),
        ("webhook.redeliver", member_actor, f"webhook_delivery:{delivery['id']}"),
        ("webhook.delete", member_actor, f"webhook:{endpoint}"),
        ("mcp.server.add", admin_actor, "mcp_server:audited"),
        ("mcp.tool.accept", admin_actor, "mcp_tool:audited/echo"),
        ("mcp.tool.call", admin_actor, "mcp_tool:audited/echo"),
        ("mcp.server.remove", admin_actor, "mcp_server:audited"),
    ]
    trail = json.dumps(entries)
    assert "whsec_" not in trail
    assert "csk_" not in trail
    for secret in secrets:
        assert secret not in trail
        assert secret.rsplit("_", 1)[-1] not in trail
