"""Debian's nginx in front of real `chatsys api` processes, configured by the SHIPPED
``deploy/nginx.conf``: a top-level ``nginx.conf`` of the test's own (prefix, pid, logs
and temporary files in a folder of its own, ``daemon off``) includes a copy of the
shipped file in which only the ``listen`` port and the ``chatsys_api`` upstream's
servers are rewritten to the test's ports. Everything else is used as shipped, so a
broken shipped config fails the tests that use it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support import ROOT, GiveUp, alive, eventually_sync, free_port

Line = Callable[[dict[str, Any]], bool]  # a filter on a log line

SHIPPED = ROOT / "deploy" / "nginx.conf"
REQUIRE = "CHATSYS_REQUIRE_NGINX"

_UPSTREAM = re.compile(r"(upstream\s+chatsys_api\s*\{)(.*?)(\n\})", re.DOTALL)
_SERVER = re.compile(r"^([ \t]*)server[ \t]+[^\s;]+([^;]*);", re.MULTILINE)
_LISTEN = re.compile(r"^([ \t]*)listen[ \t]+80[ \t]*;", re.MULTILINE)

# One line per request in the access log, for the tests to read.
_ACCESS_FORMAT = (
    '{"remote":"$remote_addr","uri":"$request_uri","status":$status,'
    '"request_id":"$chatsys_request_id","upstream":"$upstream_addr",'
    '"forwarded_for":"$http_x_forwarded_for"}'
)


def nginx_binary() -> str:
    """The nginx binary; skips the test when there is none (a newcomer's `make test`),
    unless ``CHATSYS_REQUIRE_NGINX=1`` (CI installs Debian's nginx): then it fails."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found:
        return found
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{REQUIRE}=1 and no nginx binary on PATH or in /usr/sbin")
    pytest.skip(
        f"no nginx binary (apt-get install nginx-light); set {REQUIRE}=1 to make this a failure"
    )


def shipped_for(port: int, upstreams: list[int], shipped: str | None = None) -> str:
    """The shipped server config with nginx listening on 127.0.0.1:``port`` and the
    ``chatsys_api`` upstream's servers on ``upstreams`` (the shipped server's
    parameters, e.g. ``max_fails``, kept). Raises when the file no longer has what is
    rewritten, so a change to its shape is noticed here."""
    text = SHIPPED.read_text() if shipped is None else shipped
    block = _UPSTREAM.search(text)
    if block is None:
        raise AssertionError(f"{SHIPPED}: no `upstream chatsys_api {{ ... }}` block")
    servers = list(_SERVER.finditer(block.group(2)))
    if len(servers) != 1:
        raise AssertionError(f"{SHIPPED}: expected one active server in the upstream")
    indent, params = servers[0].group(1), servers[0].group(2) or ""
    lines = "\n".join(f"{indent}server 127.0.0.1:{p}{params};" for p in upstreams)
    body = _SERVER.sub(lambda _: lines, block.group(2))
    text = text[: block.start(2)] + body + text[block.end(2) :]
    text, listens = _LISTEN.subn(rf"\g<1>listen 127.0.0.1:{port};", text)
    if listens != 1:
        raise AssertionError(f"{SHIPPED}: expected one `listen 80;`")
    return text


def top_level(prefix: Path, server_config: Path) -> str:
    """A top-level nginx.conf around ``server_config`` (included in ``http``)."""
    # As root, nginx's workers would run as nobody, who cannot enter the test's
    # folder (0700) for its temporary files.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
daemon off;
master_process on;
worker_processes 1;
{user}pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} info;
events {{
    worker_connections 512;
}}
http {{
    default_type application/octet-stream;
{temp}
    log_format chatsys_test escape=json '{_ACCESS_FORMAT}';
    access_log {prefix / "access.log"} chatsys_test;
    include {server_config};
}}
"""


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    port: int
    prefix: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access(self, where: Line = lambda _: True, count: int = 0) -> list[dict[str, Any]]:
        """The access log's lines ``where`` true, once there are ``count`` of them (nginx
        writes a line as a request ends, which may be just after the client has read
        the response)."""
        path = self.prefix / "access.log"

        def lines() -> list[dict[str, Any]] | None:
            text = path.read_text() if path.exists() else ""
            found = [line for raw in text.splitlines() if raw and where(line := json.loads(raw))]
            return found if len(found) >= count else None

        return eventually_sync(lines, within=10, message=f"{count} lines in {path}") or []

    def errors(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text() if path.exists() else ""


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


@contextlib.contextmanager
def running_nginx(prefix: Path, upstreams: list[int]) -> Iterator[Nginx]:
    """nginx in the foreground on a free port, in front of ``upstreams``; `nginx -t`
    first (its complaint is the failure); stopped at the end with every one of its
    processes (an orphaned worker fails the test)."""
    binary = nginx_binary()
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server_config = prefix / "chatsys.conf"
    server_config.write_text(shipped_for(port, upstreams))
    config = prefix / "nginx.conf"
    config.write_text(top_level(prefix, server_config))
    command = [binary, "-p", f"{prefix}/", "-e", str(prefix / "error.log"), "-c", str(config)]
    checked = subprocess.run(
        [*command, "-t"], check=False, capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, f"nginx -t refused the shipped config:\n{checked.stderr}"
    with (prefix / "stdout.log").open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    children: list[psutil.Process] = []
    try:

        def listening() -> bool:
            if process.poll() is not None:
                raise GiveUp(f"nginx exited with {process.returncode}")
            return _accepts(port)

        eventually_sync(listening, within=15, message=(prefix / "error.log").read_text)
        children = psutil.Process(process.pid).children(recursive=True)
        assert children, "nginx started no worker process"
        yield Nginx(process, port, prefix)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # fast shutdown: open streams are cut
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        eventually_sync(lambda: not alive(children), within=10, message="nginx workers left")
