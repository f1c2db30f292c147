"""The README's webhook and MCP examples, run against live `chatsys api` and `chatsys worker`
processes (API keys on, the offline model) started with the README's own
``CHATSYS_MCP_SERVERS``.

What is changed in the examples, and nothing else: the verification blocks get the secret
for ``"whsec_..."`` and a delivery's body and headers as ``raw_body`` / ``request_headers``;
the MCP client config gets this virtualenv for ``/path/to/chatsys/.venv``, the test's data
dir for ``/path/to/chatsys/.chatsys`` and, as the README says to for another port,
``CHATSYS_API_PORT``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from standardwebhooks.webhooks import WebhookVerificationError

from chatsys.agents.mcp.config import load_servers
from chatsys.infra.embedded.stack import Endpoints
from chatsys.infra.settings import McpSettings
from tests import readme
from tests.live import Live, child_env, live_chatsys
from tests.webhook_receiver import Received, Receiver


def readme_mcp_servers() -> str:
    """The value the README's block exports, as bash sees it (and a child process gets)."""
    code = readme.block("mcp-servers").code
    ran = readme.run_shell(f"{code}\nprintenv CHATSYS_MCP_SERVERS", env=child_env())
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.strip()


@pytest.fixture(scope="module")
def live(
    servers: Endpoints, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    log = tmp_path_factory.mktemp("readme-webhooks-mcp") / "chatsys.log"
    with live_chatsys(
        servers,
        template_database,
        log,
        CHATSYS_MCP_SERVERS=readme_mcp_servers(),
        CHATSYS_WEBHOOKS_ALLOW_PRIVATE_NETWORKS="true",  # the receiver is on 127.0.0.1
        CHATSYS_WEBHOOKS_RETRY_SCHEDULE="[0, 0.5]",
    ) as running:
        yield running
    text = log.read_text()
    assert "Traceback" not in text, text[text.find("Traceback") - 500 :][:4000]


# -- Verifying webhooks ------------------------------------------------------------------


def tampered(request: Received) -> bytes:
    body = json.loads(request.body)
    body["data"]["task"]["status"] = "failed"
    return json.dumps(body).encode()


def with_standardwebhooks(secret: str, raw_body: bytes, request_headers: dict[str, str]) -> Any:
    """The README's `standardwebhooks` block, run with this secret, body and headers."""
    code = readme.block("webhooks-standardwebhooks").code
    assert code.count('"whsec_..."') == 1
    scope: dict[str, Any] = {"raw_body": raw_body, "request_headers": request_headers}
    exec(code.replace('"whsec_..."', repr(secret)), scope)  # noqa: S102 (the README's code)
    return scope["payload"]


def stdlib_verify() -> Any:
    """The README's standard-library ``verify``."""
    scope: dict[str, Any] = {}
    exec(readme.block("webhooks-stdlib").code, scope)  # noqa: S102 (the README's code)
    return scope["verify"]


async def test_both_verification_blocks_accept_a_real_delivery_and_refuse_a_tampered_one(
    live: Live,
) -> None:
    verify = stdlib_verify()
    async with Receiver() as receiver:
        with live.http() as http:
            made = http.post(
                "/v1/tasks", json={"input": "hello there", "webhook_url": f"{receiver.url}/t"}
            )
            assert made.status_code == 202, made.text
            secret = made.json()["webhook_secret"]
            [request] = await receiver.wait_for(1, within=60)
            task = http.get(f"/v1/tasks/{made.json()['id']}").json()

    payload = with_standardwebhooks(secret, request.body, request.headers)
    assert payload["type"] == "task.succeeded"
    assert payload["data"]["task"] == task
    assert verify(secret, request.headers, request.body) is True

    forged = tampered(request)
    with pytest.raises(WebhookVerificationError):
        with_standardwebhooks(secret, forged, request.headers)
    assert verify(secret, request.headers, forged) is False
    other = "whsec_" + "QUJD" * 8  # a well-formed secret that is not this one
    assert verify(other, request.headers, request.body) is False
    with pytest.raises(WebhookVerificationError):
        with_standardwebhooks(other, request.body, request.headers)


async def test_during_a_rotation_both_blocks_accept_the_old_and_the_new_secret(
    live: Live,
) -> None:
    verify = stdlib_verify()
    async with Receiver() as receiver:
        with live.http() as http:
            endpoint = http.post("/v1/webhooks", json={"url": f"{receiver.url}/e"}).json()
            try:
                rotated = http.post(
                    f"/v1/webhooks/{endpoint['id']}/rotate-secret", json={"grace_seconds": 600}
                )
                assert rotated.status_code == 200, rotated.text
                http.post("/v1/tasks", json={"input": "hello there"})
                [request] = await receiver.wait_for(1, within=60)
            finally:
                http.delete(f"/v1/webhooks/{endpoint['id']}")
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (endpoint["secret"], rotated.json()["secret"]):
        assert verify(secret, request.headers, request.body) is True
        assert with_standardwebhooks(secret, request.body, request.headers)["type"] == (
            "task.succeeded"
        )
        assert verify(secret, request.headers, tampered(request)) is False


# -- MCP tools ---------------------------------------------------------------------------


def test_the_mcp_servers_block_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """All three entries parse into server definitions. Only `time` is real (a dev
    dependency, `mcp-server-time`); `fs` (a node script under /opt) and `search`
    (mcp.example.com) are made up, so they are validated here and never started."""
    monkeypatch.setenv("CHATSYS_MCP_SERVERS", readme_mcp_servers())
    servers = {s.name: s for s in load_servers(McpSettings().servers, None)}
    assert set(servers) == {"time", "fs", "search"}
    assert (servers["time"].transport, servers["time"].command) == ("stdio", "mcp-server-time")
    assert servers["fs"].transport == "stdio"
    assert servers["fs"].roles == ["operator"]
    assert servers["search"].transport == "streamable-http"
    assert servers["search"].tools == ["search_*"]
    assert servers["search"].headers == {"Authorization": "Bearer ..."}


def test_the_time_server_of_the_block_starts_and_answers_through_the_api(live: Live) -> None:
    with live.http() as http:
        listed = http.get("/v1/mcp/servers")
        assert listed.status_code == 200, listed.text
        states = {s["name"]: s["state"] for s in listed.json()["items"]}
        assert {"time", "fs", "search"} <= set(states), states
        tools = http.get("/v1/mcp/servers/time/tools")
        assert tools.status_code == 200, tools.text
        names = {t["name"] for t in tools.json()["items"]}
        assert "get_current_time" in names, names
        called = http.post(
            "/v1/mcp/servers/time/tools/get_current_time/call",
            json={"arguments": {"timezone": "UTC"}},
        )
        assert called.status_code == 200, called.text
        assert called.json()["is_error"] is False
        assert '"timezone": "UTC"' in called.json()["content"]
        servers = {s["name"]: s for s in http.get("/v1/mcp/servers").json()["items"]}
    assert servers["time"]["state"] == "ready"
    assert servers["time"]["pid"] is not None
    assert servers["fs"]["state"] == servers["search"]["state"] == "stopped"  # lazy, unused


# -- chatsys as an MCP server ------------------------------------------------------------


def client_config(data_dir: Path, port: int) -> dict[str, Any]:
    text = readme.block("mcp-client-config").code
    text = text.replace("/path/to/chatsys/.venv", sys.prefix)
    text = text.replace("/path/to/chatsys/.chatsys", str(data_dir))
    assert "/path/to" not in text
    server: dict[str, Any] = json.loads(text)["mcpServers"]["chatsys"]
    server["env"]["CHATSYS_API_PORT"] = str(port)  # the README: "if make run uses another port"
    return server


async def test_the_client_config_runs_chatsys_mcp_against_the_running_api(
    live: Live, tmp_path: Path
) -> None:
    data_dir = tmp_path / "checkout" / ".chatsys"
    data_dir.mkdir(parents=True)
    (data_dir / "admin.key").write_text(live.key + "\n")  # as `chatsys dev` leaves it
    (tmp_path / "elsewhere").mkdir()
    server = client_config(data_dir, live.port)
    assert await asyncio.to_thread(Path(server["command"]).is_file), server["command"]
    params = StdioServerParameters(
        command=server["command"],
        args=server["args"],
        env=server["env"],  # a client adds only its default environment (PATH, HOME, ...)
        cwd=str(tmp_path / "elsewhere"),  # a client's working directory is not the checkout
    )
    async with Client(params, read_timeout_seconds=60) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"submit_task", "get_task", "list_tasks", "wait_for_task"} <= tools
        made = await client.call_tool("submit_task", {"input": "what is (2 + 3) * 4?"})
        assert not made.is_error, made.content
        queued = made.structured_content
        assert queued is not None
        waited = await client.call_tool(
            "wait_for_task", {"task_id": queued["id"], "timeout_seconds": 40}
        )
    assert not waited.is_error, waited.content
    ended = waited.structured_content
    assert ended is not None
    assert ended["ended"] is True
    assert ended["task"]["status"] == "succeeded"
    assert '"value": 20.0' in ended["task"]["result"]["text"]
