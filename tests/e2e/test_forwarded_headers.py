"""X-Forwarded-For is believed only from the proxies in CHATSYS_API_TRUSTED_PROXIES, on
real `chatsys api` processes: with the default (none), a same-host client rotating the
header is still one client to the anonymous per-IP limit and to the request log; with
loopback trusted (a proxy on this host), the forwarded address is the one limited and
logged, and of a chain as nginx sends it (``$proxy_add_x_forwarded_for``), the address
nginx appended. (The chain is sent here as nginx would send it; tests/deploy/test_nginx.py
runs nginx itself with the shipped config.)"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.e2e.test_access_processes import wait_alive
from tests.support import chatsys, clean_env, eventually_sync, free_port, terminating

ANONYMOUS_LIMIT = 5


def _request_lines(log: Path, count: int) -> list[dict[str, object]]:
    """The request lines of the log, once there are ``count`` (a line is written just
    after its response)."""

    def logged() -> list[dict[str, object]] | None:
        lines = [
            json.loads(raw)
            for raw in log.read_text().splitlines()
            if raw.startswith("{") and '"chatsys.api.request"' in raw
        ]
        return lines if len(lines) >= count else None

    return eventually_sync(logged, within=10, message=lambda: log.read_text()[-2000:])


def _codes(base: str, forwarded_for: list[str]) -> list[int]:
    return [
        httpx.get(
            f"{base}/v1/me",
            headers={"Authorization": "Bearer csk_wrong", "X-Forwarded-For": address},
            timeout=10,
        ).status_code
        for address in forwarded_for
    ]


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    common = {
        "CHATSYS_DATABASE_URL": database_url,
        "CHATSYS_REDIS_URL": redis_url,
        "CHATSYS_AUTH_ENABLED": "true",
        "CHATSYS_LIMITS_ENABLED": "true",
        "CHATSYS_LIMITS_ANONYMOUS_REQUESTS": str(ANONYMOUS_LIMIT),
        "CHATSYS_LOG_FORMAT": "json",
    }
    ports = free_port(), free_port()
    logs = tmp_path / "default.log", tmp_path / "behind-proxy.log"
    rotating = [f"203.0.113.{i}" for i in range(1, 11)]
    with (
        terminating(chatsys("api", env=clean_env(**common, CHATSYS_API_PORT=str(ports[0])),
                            log=logs[0])) as default,
        terminating(chatsys("api", env=clean_env(**common, CHATSYS_API_PORT=str(ports[1]),
                                                 CHATSYS_API_TRUSTED_PROXIES='["127.0.0.1"]'),
                            log=logs[1])) as behind_proxy,
    ):  # fmt: skip
        bases = [f"http://127.0.0.1:{p}" for p in ports]
        wait_alive(bases[0], default, logs[0])
        wait_alive(bases[1], behind_proxy, logs[1])

        # Nobody trusted: rotating the header changes nothing, the peer is limited.
        codes = _codes(bases[0], rotating)
        assert codes == [401] * ANONYMOUS_LIMIT + [429] * (10 - ANONYMOUS_LIMIT)
        assert {line["client"] for line in _request_lines(logs[0], 10)} == {"127.0.0.1"}

        # Loopback trusted: each forwarded address is its own client ...
        assert _codes(bases[1], rotating) == [401] * 10
        logged = [line["client"] for line in _request_lines(logs[1], 10)]
        assert logged == rotating
        # ... and the one that keeps coming is limited.
        repeated = _codes(bases[1], ["198.51.100.7"] * 8)
        assert repeated == [401] * ANONYMOUS_LIMIT + [429] * (8 - ANONYMOUS_LIMIT)
        last = _request_lines(logs[1], 18)[-1]
        assert (last["client"], last["status"]) == ("198.51.100.7", 429)
        # As deploy/nginx.conf sends it: what the client wrote, then the address nginx
        # saw. The client's part is ignored: the address nginx saw is limited.
        chained = _codes(bases[1], [f"{forged}, 192.0.2.44" for forged in rotating[:8]])
        assert chained == [401] * ANONYMOUS_LIMIT + [429] * (8 - ANONYMOUS_LIMIT)
        assert {line["client"] for line in _request_lines(logs[1], 26)[-8:]} == {"192.0.2.44"}
