"""The worker's LLM port: LiteLLM imported on first use, on a thread, then the same
answers as the gateway itself (the built-in offline model, no network)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from chatsys.agents.config import GatewayConfig
from chatsys.agents.lazy_gateway import LazyLiteLLMGateway
from chatsys.domain.llm.ports import Completion, TextDelta
from chatsys.domain.shared.errors import InvalidInput
from tests.support import ROOT

HELLO = [{"role": "user", "content": "Say hello"}]


async def test_the_first_call_builds_the_gateway_and_streams_through_it() -> None:
    lazy = LazyLiteLLMGateway(GatewayConfig())
    before = lazy.loaded
    events = [e async for e in lazy.stream(role="writer", messages=HELLO)]
    assert (before, lazy.loaded) == (False, True)
    final = events[-1]
    assert isinstance(final, Completion)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == final.text
    assert "offline" in final.text.lower()


async def test_calls_made_while_it_loads_share_one_gateway() -> None:
    lazy = LazyLiteLLMGateway(GatewayConfig())
    lazy.preload()
    first, second = await asyncio.gather(lazy.gateway(), lazy.gateway())
    assert first is second
    assert await lazy.gateway() is first


async def test_a_caller_cancelled_while_it_waits_does_not_stop_the_load() -> None:
    lazy = LazyLiteLLMGateway(GatewayConfig())
    waiting = asyncio.create_task(lazy.gateway())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert (await lazy.gateway()).config == GatewayConfig()


async def test_an_unconfigured_model_override_is_refused_as_by_the_gateway() -> None:
    lazy = LazyLiteLLMGateway(GatewayConfig())
    with pytest.raises(InvalidInput):
        async for _ in lazy.stream(role="writer", messages=HELLO, model="openai/not-configured"):
            pass


def test_a_config_naming_an_unknown_role_is_refused_at_once() -> None:
    with pytest.raises(InvalidInput, match="wizard"):
        LazyLiteLLMGateway(GatewayConfig(role_models={"wizard": "openai/x"}))


def test_the_worker_root_imports_neither_litellm_nor_the_api() -> None:
    """What the worker loads before its first heartbeat (a process of its own: this
    test session has imported everything already)."""
    code = (
        "import sys, chatsys.bootstrap.worker, chatsys.bootstrap\n"
        "from chatsys.bootstrap import build_worker\n"
        "print(sorted(m for m in ('litellm', 'chatsys.bootstrap.api', 'chatsys.api.app') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stderr


async def test_the_loaded_hook_runs_once_the_gateway_is_built() -> None:
    calls: list[bool] = []
    lazy = LazyLiteLLMGateway(GatewayConfig(), on_loaded=lambda: calls.append(lazy.loaded))
    await lazy.gateway()
    await lazy.gateway()
    assert calls == [True]
