"""The ``LLM`` port over a ``LiteLLMGateway`` that is built on first use, off the event loop.

Importing LiteLLM takes seconds and about 100 MiB: most of what a worker spent before
its first heartbeat, and most of what an idle worker holds. The worker builds this
instead, so its heartbeat and claim loop are up without LiteLLM. The first model call
(or ``preload()``) imports LiteLLM and builds the gateway on a thread, so the event
loop goes on serving heartbeats, leases and other jobs meanwhile; every call made
before the gateway is ready waits for it, then streams as ``LiteLLMGateway`` does. A
run claimed before then waits so (its lease heartbeat goes on), never fails for it.

The configuration is checked at once (``GatewayConfig.check``): a worker with an
unusable one still refuses to start.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from chatsys.agents.config import GatewayConfig
from chatsys.domain.llm.ports import LLMEvent, Message

if TYPE_CHECKING:
    from chatsys.agents.gateway import LiteLLMGateway


def _build(config: GatewayConfig) -> LiteLLMGateway:
    from chatsys.agents.gateway import LiteLLMGateway

    return LiteLLMGateway(config)


class LazyLiteLLMGateway:
    """The ``LLM`` port; LiteLLM is imported on the first call or on ``preload()``."""

    def __init__(
        self, config: GatewayConfig, *, on_loaded: Callable[[], None] | None = None
    ) -> None:
        """``on_loaded``: called on the event loop once the gateway is built (the worker
        settles its heap again there: ``chatsys.infra.heap``)."""
        config.check()
        self.config = config
        self._on_loaded = on_loaded
        self._gateway: LiteLLMGateway | None = None
        self._loading: asyncio.Future[LiteLLMGateway] | None = None

    @property
    def loaded(self) -> bool:
        return self._gateway is not None

    def preload(self) -> None:
        """Start building the gateway in the background (on a thread); returns at once."""
        if self._gateway is None and self._loading is None:
            self._loading = asyncio.ensure_future(asyncio.to_thread(_build, self.config))
            self._loading.add_done_callback(self._loaded)

    def _loaded(self, loading: asyncio.Future[LiteLLMGateway]) -> None:
        if loading.cancelled() or loading.exception() is not None:
            self._loading = None  # the next call tries again (and raises what it meets)
        else:
            self._gateway = loading.result()
            if self._on_loaded is not None:
                self._on_loaded()

    async def gateway(self) -> LiteLLMGateway:
        """The gateway, once built; concurrent callers share one build, and a caller
        cancelled while it waits does not cancel the build."""
        if self._gateway is not None:
            return self._gateway
        self.preload()
        assert self._loading is not None
        return await asyncio.shield(self._loading)

    async def stream(
        self,
        *,
        role: str,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] | None = None,
        model: str | None = None,
        json_mode: bool = False,
    ) -> AsyncIterator[LLMEvent]:
        gateway = self._gateway or await self.gateway()
        async for event in gateway.stream(
            role=role, messages=messages, tools=tools, model=model, json_mode=json_mode
        ):
            yield event
