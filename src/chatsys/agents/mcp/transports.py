"""Opening an MCP server's streams: stdio (a child process), streamable HTTP, or one of
our own servers in process.

Stdio children run through a tiny launcher that asks the kernel to kill the
server when its owner dies (``PR_SET_PDEATHSIG``), then executes the command in
place: the SDK's transport stops them on a normal shutdown (stdin closed, then
SIGTERM and SIGKILL to the process group), and the death signal covers an owner
killed without one. Each child carries a random instance id in its
environment, so the owner can find its pid in the process table. Their stderr goes
into our log, line by line (``agents/mcp/stderr.py``).
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import psutil
from mcp.client._transport import TransportStreams
from mcp.client.stdio import StdioServerParameters, get_default_environment, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.memory import create_client_server_memory_streams

from chatsys.agents.mcp.config import ServerConfig
from chatsys.agents.mcp.stderr import relayed_stderr

INSTANCE_VARIABLE = "CHATSYS_MCP_INSTANCE"

# Runs in the child before the server: set the death signal, make sure the owner did not
# die before it was set, then become the server (the signal survives exec).
_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(70)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


class StartError(Exception):
    """The server cannot be started; the message says why."""


def own_bin_dir() -> Path:
    """The bin directory of the interpreter running chatsys (its virtualenv's, when it runs
    in one): the symlink's folder, not its target's, so a venv stays the venv."""
    return Path(sys.executable).parent


def resolve_command(config: ServerConfig, *, first_in: Path | None = None) -> str:
    """The executable's absolute path, or a clear ``StartError``.

    A bare name (no slash) is looked up in ``first_in`` (chatsys' own bin directory by
    default, so ``pip install mcp-server-time`` beside chatsys is enough), then on PATH
    (the server's ``env`` PATH if it sets one). A name with a slash is taken as a path.
    """
    assert config.command is not None
    command = config.command
    cwd = Path(config.cwd) if config.cwd else Path.cwd()
    if config.cwd and not cwd.is_dir():
        raise StartError(f"working directory not found: {config.cwd}")
    if "/" in command:
        candidate = (cwd / command) if not command.startswith("/") else Path(command)
        if not candidate.is_file() or not os.access(candidate, os.X_OK):
            raise StartError(f"command not found or not executable: {command}")
        return str(candidate)
    own = first_in if first_in is not None else own_bin_dir()
    path = config.env.get("PATH") or os.environ.get("PATH", os.defpath)
    found = shutil.which(command, path=str(own)) or shutil.which(command, path=path)
    if found is None:
        raise StartError(f"command not found: {command} (searched {own}, then PATH)")
    return found


def find_instance(instance: str) -> int | None:
    """The pid of our child carrying this instance id, if it is alive."""
    for child in psutil.Process().children(recursive=False):
        try:
            if child.environ().get(INSTANCE_VARIABLE) == instance:
                return child.pid
        except (psutil.Error, OSError):
            continue
    return None


def alive(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@asynccontextmanager
async def open_stdio(config: ServerConfig, instance: str) -> AsyncIterator[TransportStreams]:
    executable = resolve_command(config)
    env = {**get_default_environment(), **config.env, INSTANCE_VARIABLE: instance}
    if sys.platform == "linux":
        command = sys.executable
        args = ["-I", "-S", "-c", _LAUNCHER, str(os.getpid()), executable, *config.args]
    else:  # pragma: no cover - no death signal elsewhere; shutdown still stops the group
        command, args = executable, list(config.args)
    params = StdioServerParameters(command=command, args=args, env=env, cwd=config.cwd)
    try:
        with relayed_stderr(config.name) as errlog:
            async with stdio_client(params, errlog=errlog) as streams:
                yield streams
    except OSError as exc:
        raise StartError(f"cannot start {config.command}: {exc}") from exc


@asynccontextmanager
async def open_http(config: ServerConfig) -> AsyncIterator[TransportStreams]:
    assert config.url is not None
    async with (
        create_mcp_http_client(headers=dict(config.headers) or None) as http,
        streamable_http_client(config.url, http_client=http) as streams,
    ):
        yield streams


@asynccontextmanager
async def open_builtin(server: Server[Any]) -> AsyncIterator[TransportStreams]:
    """One of our own servers, served in this process over memory streams."""
    async with create_client_server_memory_streams() as (client, served):
        done = anyio.Event()

        async def serve() -> None:
            try:
                await server.run(served[0], served[1], server.create_initialization_options())
            finally:
                done.set()

        async with anyio.create_task_group() as group:
            group.start_soon(serve)
            try:
                yield client
            finally:
                await client[1].aclose()
                with anyio.move_on_after(2):
                    await done.wait()
                group.cancel_scope.cancel()


def new_instance() -> str:
    return uuid.uuid4().hex


def open_transport(config: ServerConfig, instance: str, builtins: Mapping[str, Server[Any]]) -> Any:
    if config.transport == "stdio":
        return open_stdio(config, instance)
    if config.transport == "streamable-http":
        return open_http(config)
    server = builtins.get(config.name)
    if server is None:
        raise StartError(f"no built-in server named '{config.name}'")
    return open_builtin(server)
