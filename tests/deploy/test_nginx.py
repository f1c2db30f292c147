"""The shipped deploy/nginx.conf, run by Debian's nginx in front of real processes: two
`chatsys api` (trusting loopback, the proxy's address, as the config's comment says), a
`chatsys worker` whose model is the fake provider, Postgres and Redis of the session.
What a user of the deployment would notice: a client is rate limited by its own address
whatever it writes in X-Forwarded-For, tasks stream over SSE and WebSocket through the
proxy, request ids are kept or made up, big bodies and slow clients stop at nginx, and
a dead API process is stepped around. The last test kills one API process: keep it last.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from chatsys.infra.embedded.stack import Endpoints
from tests.deploy.nginx import Line, Nginx, running_nginx
from tests.fakes.openai_compat import FakeOpenAI, run_fake_openai
from tests.live import admin_key, module_database
from tests.streams import TERMINAL, assert_gapless, deltas_by_step, read_sse, read_ws
from tests.support import (
    chatsys,
    clean_env,
    eventually_sync,
    free_port,
    terminating,
    wait_ready,
)

ANONYMOUS_LIMIT = 5
CLIENT = "127.0.0.2"  # the client's own address: nginx sees it and appends it
NEIGHBOUR = "127.0.0.3"


@dataclass
class Deployment:
    nginx: Nginx
    apis: list[subprocess.Popen[bytes]]  # the `chatsys api` processes, in upstream order
    ports: list[int]
    key: str
    logs: list[Path]
    fake: FakeOpenAI

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def client(self, address: str = CLIENT, **headers: str) -> httpx.Client:
        """An HTTP client connecting to nginx from ``address``."""
        transport = httpx.HTTPTransport(local_address=address)
        return httpx.Client(
            base_url=self.nginx.base, transport=transport, headers=headers, timeout=30
        )

    def requests(self, where: Line = lambda _: True, count: int = 0) -> list[dict[str, Any]]:
        """The request lines of both API processes' logs ``where`` true, once there are
        ``count`` of them (a line is written just after its response)."""

        def lines() -> list[dict[str, Any]] | None:
            found = [
                line
                for log in self.logs
                for raw in log.read_text().splitlines()
                if raw.startswith("{") and '"chatsys.api.request"' in raw
                if where(line := json.loads(raw))
            ]
            return found if len(found) >= count else None

        return eventually_sync(lines, within=10, message=f"{count} request lines") or []


@pytest.fixture(scope="module")
def deployment(
    servers: Endpoints, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    folder = tmp_path_factory.mktemp("nginx-deployment")
    redis.Redis.from_url(servers.redis_url).flushdb()
    with run_fake_openai() as llm, module_database(servers, template_database) as database_url:
        llm.fake.chunk_delay = 0.03
        env = clean_env(
            CHATSYS_DATABASE_URL=database_url,
            CHATSYS_REDIS_URL=servers.redis_url,
            CHATSYS_AUTH_ENABLED="true",
            CHATSYS_LIMITS_ENABLED="true",
            CHATSYS_LIMITS_ANONYMOUS_REQUESTS=str(ANONYMOUS_LIMIT),
            CHATSYS_API_TRUSTED_PROXIES='["127.0.0.1"]',
            CHATSYS_MODEL="openai/gpt-4o-mini",
            CHATSYS_LLM_API_BASE=llm.base_url,
            CHATSYS_LLM_API_KEY="sk-test",
            CHATSYS_WORKER_HEARTBEAT_INTERVAL="0.5",
            CHATSYS_LOG_FORMAT="json",
        )
        ports = [free_port(), free_port()]
        logs = [folder / "api-a.log", folder / "api-b.log"]
        key = admin_key(database_url)
        with (
            terminating(chatsys("worker", env=env, log=folder / "worker.log")),
            terminating(chatsys("api", env={**env, "CHATSYS_API_PORT": str(ports[0])},
                                log=logs[0])) as api_a,
            terminating(chatsys("api", env={**env, "CHATSYS_API_PORT": str(ports[1])},
                                log=logs[1])) as api_b,
        ):  # fmt: skip
            # Ready means a worker heartbeat too: a worker starts slowly on a busy machine.
            for port, api, log in zip(ports, (api_a, api_b), logs, strict=True):
                wait_ready(f"http://127.0.0.1:{port}", 180, proc=api, log=log)
            with running_nginx(folder / "nginx", ports) as nginx:
                yield Deployment(nginx, [api_a, api_b], ports, key, logs, llm.fake)
        for log in logs:
            text = log.read_text()
            assert "Traceback" not in text, text[text.find("Traceback") - 500 :][:4000]


def test_a_client_rotating_forwarded_for_is_limited_by_its_own_address(
    deployment: Deployment,
) -> None:
    forged = [f"203.0.113.{i}" for i in range(1, 11)]
    with deployment.client(Authorization="Bearer csk_wrong") as client:
        codes = [client.get("/v1/me", headers={"X-Forwarded-For": f}).status_code for f in forged]
    assert codes == [401] * ANONYMOUS_LIMIT + [429] * (10 - ANONYMOUS_LIMIT)
    # Both API processes answered (one limit, shared), and each logged the real client.
    seen = deployment.nginx.access(lambda line: line["uri"] == "/v1/me", 10)
    assert {line["remote"] for line in seen} == {CLIENT}
    assert {line["upstream"] for line in seen} == {f"127.0.0.1:{p}" for p in deployment.ports}
    logged = deployment.requests(lambda line: line["path"] == "/v1/me", 10)
    assert sorted((line["client"], line["status"]) for line in logged) == sorted(
        (CLIENT, code) for code in codes
    )
    # The limit is the client's, not the proxy's: a neighbour behind nginx is not refused.
    with deployment.client(NEIGHBOUR, Authorization="Bearer csk_wrong") as neighbour:
        assert neighbour.get("/v1/me").status_code == 401


async def test_a_task_streams_through_nginx_over_sse_and_websocket(
    deployment: Deployment,
) -> None:
    base = deployment.nginx.base
    async with httpx.AsyncClient(base_url=base, headers=deployment.auth, timeout=30) as http:
        made = await http.post(
            "/v1/tasks", json={"input": "Write a function that adds 2 numbers",
                               "agents": ["architect", "developer", "reviewer"]},
        )  # fmt: skip
        assert made.status_code == 202, made.text
        task_id = made.json()["id"]
        events_url = f"/v1/tasks/{task_id}/events"
        # Event by event (resuming with Last-Event-ID each time) up to the first text:
        # it reaches the client while the task still runs, not buffered to its end.
        early: list[dict[str, Any]] = []
        while not early or early[-1]["type"] != "message.delta":
            after = early[-1]["seq"] if early else None
            got = await read_sse(http, events_url, last_event_id=after, stop_after=1)
            assert got.status == 200
            early += got.events
            assert early[-1]["type"] not in TERMINAL, early
        status = (await http.get(f"/v1/tasks/{task_id}")).json()["status"]
        assert status == "running", early

        ws_url = f"ws://127.0.0.1:{deployment.nginx.port}/v1/tasks/{task_id}/stream"
        ws, rest = await asyncio.gather(
            read_ws(ws_url, additional_headers=deployment.auth),
            read_sse(http, events_url, last_event_id=early[-1]["seq"]),
        )
        task = (await http.get(f"/v1/tasks/{task_id}")).json()
    assert task["status"] == "succeeded", task
    assert_gapless(ws.events)
    assert ws.events[-1]["type"] in TERMINAL
    assert ws.code == 1000, (ws.code, ws.reason)
    assert early + rest.events == ws.events
    assert deltas_by_step(ws.events) == {s["key"]: s["output"] for s in task["steps"]}
    # nginx logs the WebSocket when it closes: wait for that line.
    deployment.nginx.access(lambda line: line["uri"].endswith(f"{task_id}/stream"), 1)
    streams = deployment.nginx.access(lambda line: task_id in line["uri"])
    assert {line["status"] for line in streams} <= {101, 200}, streams


def test_request_ids_are_kept_when_sent_and_made_up_when_not(deployment: Deployment) -> None:
    with deployment.client(**deployment.auth) as client:
        kept = client.get("/v1/me", headers={"X-Request-ID": "client-chosen.42"})
        made_up = client.get("/v1/me")
    assert kept.status_code == made_up.status_code == 200
    assert kept.headers["x-request-id"] == "client-chosen.42"
    request_id = made_up.headers["x-request-id"]
    # nginx made this one and passed it on: the API answered and logged nginx's id.
    assert deployment.nginx.access(lambda line: line["request_id"] == request_id, 1)
    ids = {"client-chosen.42", request_id}
    logged = deployment.requests(lambda line: line.get("request_id") in ids, 2)
    assert {line["request_id"] for line in logged} == ids


async def _closed_after(request: bytes, port: int, within: float = 30) -> tuple[float, bytes]:
    """Send ``request`` (incomplete) to nginx and wait for nginx to hang up: the seconds
    it took and what nginx said before."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(CLIENT, 0))
    writer.write(request)
    await writer.drain()
    said = await asyncio.wait_for(reader.read(), within)  # to the end: nginx closed it
    writer.close()
    return time.monotonic() - started, said


async def test_nginx_refuses_a_big_body_and_hangs_up_on_slow_clients(
    deployment: Deployment,
) -> None:
    def posts() -> int:
        return len(deployment.requests(lambda line: line["path"] == "/v1/tasks"))

    before = posts()
    async with httpx.AsyncClient(
        base_url=deployment.nginx.base, headers=deployment.auth, timeout=30
    ) as http:
        body = json.dumps({"input": "x" * (1024 * 1024)})
        big = await http.post(
            "/v1/tasks", content=body, headers={"Content-Type": "application/json"}
        )
        # Under nginx's 1 MiB: through to the API, which has its own (smaller) limit.
        half = json.dumps({"input": "x" * (512 * 1024)})
        api = await http.post(
            "/v1/tasks", content=half, headers={"Content-Type": "application/json"}
        )
    assert big.status_code == 413
    assert "problem+json" not in big.headers.get("content-type", "")  # nginx's own page
    assert api.status_code == 413
    assert api.headers["content-type"] == "application/problem+json"
    deployment.requests(lambda line: line["path"] == "/v1/tasks", before + 1)

    # A head that never ends and a body that never comes: nginx hangs up (its 10 s
    # timeouts), the API never sees them.
    port = deployment.nginx.port
    head = b"GET /v1/me HTTP/1.1\r\nHost: chatsys\r\nX-Slow: "
    body_start = b"POST /v1/tasks HTTP/1.1\r\nHost: chatsys\r\nContent-Length: 100\r\n\r\n{"
    results = await asyncio.gather(_closed_after(head, port), _closed_after(body_start, port))
    for seconds, said in results:
        assert seconds > 5, results  # not refused at once: timed out
        assert said == b"" or said.startswith(b"HTTP/1.1 408"), said[:200]
    assert posts() == before + 1  # neither the 1 MiB body nor the slow ones reached it


def test_a_killed_api_process_is_stepped_around(deployment: Deployment) -> None:
    dead, survivor = deployment.ports
    deployment.apis[0].kill()
    deployment.apis[0].wait(10)
    ids = (f"failover-{n}" for n in range(1000))  # to find these requests in nginx's log
    with deployment.client(**deployment.auth) as client:

        def get(path: str) -> httpx.Response:
            return client.get(path, headers={"X-Request-ID": next(ids)})

        reads = [get("/v1/me").status_code for _ in range(10)]
        made = [
            client.post("/v1/tasks", json={"input": f"Write haiku {i}"},
                        headers={"X-Request-ID": next(ids)})
            for i in range(4)
        ]  # fmt: skip
        assert reads == [200] * 10
        assert [m.status_code for m in made] == [202] * 4, [m.text for m in made]

        def finished() -> bool:
            states = {get(f"/v1/tasks/{m.json()['id']}").json()["status"] for m in made}
            return states == {"succeeded"}

        eventually_sync(finished, within=60, every=0.5)
    after = deployment.nginx.access(lambda line: line["request_id"].startswith("failover-"), 14)
    upstreams = {line["upstream"] for line in after}
    # nginx tried the dead process, then answered from the other one ...
    assert f"127.0.0.1:{dead}, 127.0.0.1:{survivor}" in upstreams, upstreams
    # ... and every answer came from the survivor.
    assert all(u.endswith(f"127.0.0.1:{survivor}") for u in upstreams), upstreams
