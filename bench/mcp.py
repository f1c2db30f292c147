"""MCP: a tool call through the manager against a direct ``ClientSession.call_tool`` on
the same server program over stdio, and the time to start a server and list its tools.

The two call paths use their own server process each and are interleaved in
rounds, so both see the same machine load; the ratio is of their p50s.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from bench.pipeline import percentile
from bench.startup import ROOT, say
from chatsys.agents.mcp.config import McpDefaults, parse_server
from chatsys.agents.mcp.manager import McpManager

Table = dict[str, dict[str, float]]
ARGS = ["-m", "tests.fakes.mcp_server"]
TIME_SERVER = str(Path(sys.executable).parent / "mcp-server-time")


async def _timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return (time.perf_counter() - started) * 1000


async def _calls(runs: int) -> tuple[list[float], list[float]]:
    manager = McpManager(
        [parse_server({"name": "fake", "command": sys.executable, "args": ARGS,
                       "cwd": str(ROOT)})],
        McpDefaults(),
    )  # fmt: skip
    params = StdioServerParameters(command=sys.executable, args=ARGS, cwd=str(ROOT))
    direct: list[float] = []
    managed: list[float] = []
    try:
        await manager.specs_for("developer")  # start it, list and pin its tools
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            await session.list_tools()

            async def through_manager() -> None:
                result = await manager.invoke(
                    "developer", "fake__echo", {"text": "hello"}, workspace=None
                )
                assert result.content == "hello", result.content

            async def straight() -> None:
                result = await session.call_tool("echo", {"text": "hello"})
                assert not result.is_error

            for _ in range(20):  # warm up both
                await through_manager()
                await straight()
            for _ in range(runs):
                direct.append(await _timed(straight))
                managed.append(await _timed(through_manager))
    finally:
        await manager.close()
    return direct, managed


async def _starts(runs: int, command: str, args: list[str]) -> tuple[list[float], list[float]]:
    params = StdioServerParameters(command=command, args=args, cwd=str(ROOT))
    direct: list[float] = []
    managed: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()  # until the tools are listed; closing is not timed
        async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            await s.list_tools()
            direct.append((time.perf_counter() - started) * 1000)
        manager = McpManager(
            [parse_server({"name": "s", "command": command, "args": args, "cwd": str(ROOT)})]
        )
        try:
            started = time.perf_counter()
            await manager.tools("s")
            managed.append((time.perf_counter() - started) * 1000)
        finally:
            await manager.close()
    return direct, managed


def _row(chatsys: list[float], baseline: list[float], q: float = 50) -> dict[str, float]:
    ours, base = percentile(chatsys, q), percentile(baseline, q)
    return {"chatsys": ours, "baseline": base, "ratio": ours / base}


def run_mcp(runs: int = 500, starts: int = 5) -> Table:
    say(f"mcp: {runs} tool calls each way over stdio, {starts} cold starts of two servers")

    async def measure() -> Table:
        direct, managed = await _calls(runs)
        fake_direct, fake_managed = await _starts(starts, sys.executable, ARGS)
        time_direct, time_managed = await _starts(starts, TIME_SERVER, [])
        return {
            "tool call, p50 (ms)": _row(managed, direct),
            "tool call, p99 (ms)": _row(managed, direct, 99),
            "added per call, p50 (ms)": {
                "chatsys": statistics.median(managed) - statistics.median(direct),
                "baseline": 0.0,
                "ratio": 0.0,
            },
            "start + list_tools, test server (ms)": _row(fake_managed, fake_direct),
            "start + list_tools, mcp-server-time (ms)": _row(time_managed, time_direct),
        }

    return asyncio.run(measure())
