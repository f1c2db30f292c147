"""The LLM gateway: every model call goes through one LiteLLM Router.

Each role has an alias (``chatsys/<role>``) whose deployment is that role's
model; retries, fallbacks between models and cooldowns of failing deployments
are the Router's (configured here, not reimplemented). Usage and cost come from
LiteLLM's own accounting of the streamed response.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import litellm
from litellm.router import Router

from chatsys.agents.config import GatewayConfig
from chatsys.agents.offline import register_offline_model
from chatsys.domain.llm.ports import Completion, LLMEvent, Message, TextDelta, ToolCall
from chatsys.domain.planning.planner import Role
from chatsys.domain.shared.errors import InvalidInput, LLMError
from chatsys.domain.tasks.model import Usage

_RETRYABLE = (
    litellm.exceptions.Timeout,
    litellm.exceptions.RateLimitError,
    litellm.exceptions.ServiceUnavailableError,
    litellm.exceptions.InternalServerError,
    litellm.exceptions.APIConnectionError,
    litellm.exceptions.BadGatewayError,
)


def _quiet_litellm() -> None:
    """No per-chunk debug logging or telemetry: they cost time on every token."""
    litellm.suppress_debug_info = True
    litellm.set_verbose = False  # type: ignore[attr-defined]
    litellm.telemetry = False
    litellm.disable_streaming_logging = True
    # Not ``turn_off_message_logging``: no logging callback is configured, and that flag
    # makes LiteLLM deep-copy and redact every request and response after the call.
    litellm.drop_params = True


def _alias(name: str) -> str:
    return f"chatsys/{name}"


class LiteLLMGateway:
    """The ``LLM`` port over a LiteLLM Router."""

    def __init__(self, config: GatewayConfig) -> None:
        config.check()
        _quiet_litellm()
        register_offline_model()
        self.config = config
        self._models = {role: config.model_for(role) for role in Role}
        self.router = Router(
            model_list=self._deployments(),
            fallbacks=self._fallbacks(),
            num_retries=config.num_retries,
            retry_after=0,
            allowed_fails=config.allowed_fails,
            cooldown_time=config.cooldown_seconds,
            timeout=config.timeout,
            stream_timeout=config.timeout,
            set_verbose=False,
        )

    def _params(self, model: str) -> dict[str, Any]:
        params: dict[str, Any] = {"model": model}
        if not model.startswith("chatsys-offline/"):
            if self.config.api_base:
                params["api_base"] = self.config.api_base
            if self.config.api_key:
                params["api_key"] = self.config.api_key
        return params

    def _deployments(self) -> list[dict[str, Any]]:
        deployments = [
            {"model_name": _alias(role.value), "litellm_params": self._params(model)}
            for role, model in self._models.items()
        ]
        for model in self.configured_models():
            deployments.append(
                {"model_name": _alias(f"model/{model}"), "litellm_params": self._params(model)}
            )
        for index, model in enumerate(self.config.fallbacks):
            deployments.append(
                {"model_name": _alias(f"fallback/{index}"), "litellm_params": self._params(model)}
            )
        return deployments

    def _fallbacks(self) -> list[dict[str, list[str]]]:
        chain = [_alias(f"fallback/{i}") for i in range(len(self.config.fallbacks))]
        if not chain:
            return []
        groups = [_alias(r.value) for r in Role] + [
            _alias(f"model/{m}") for m in self.configured_models()
        ]
        return [{group: chain} for group in groups]

    def configured_models(self) -> list[str]:
        return self.config.configured_models()

    def model_of(self, role: str) -> str:
        return self._models[Role(role)]

    def _target(self, role: str, model: str | None) -> str:
        if model is None:
            return _alias(role)
        if model not in self.configured_models():
            raise InvalidInput(
                f"model '{model}' is not configured; "
                f"configured: {', '.join(self.configured_models())}"
            )
        return _alias(f"model/{model}")

    async def stream(
        self,
        *,
        role: str,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] | None = None,
        model: str | None = None,
        json_mode: bool = False,
    ) -> AsyncIterator[LLMEvent]:
        target = self._target(role, model)
        kwargs: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}}
        if tools:
            kwargs["tools"] = list(tools)
        if json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        chunks: list[Any] = []
        texts: list[str] = []
        calls = usage = None
        try:
            response = await self.router.acompletion(
                model=target,
                messages=list(messages),  # type: ignore[arg-type]
                **kwargs,
            )
            async for chunk in response:
                chunks.append(chunk)
                usage = getattr(chunk, "usage", None) or usage
                choices = getattr(chunk, "choices", None) or []
                delta = choices[0].delta if choices else None
                if delta is None:
                    continue
                calls = calls or getattr(delta, "tool_calls", None)
                text = getattr(delta, "content", None)
                if text:
                    texts.append(text)
                    yield TextDelta(text)
        except InvalidInput:
            raise
        except Exception as exc:
            raise _as_llm_error(exc) from exc
        if usage is not None and not calls:  # a text answer its provider counted
            yield _counted(chunks[-1], "".join(texts), usage)
        else:
            yield self._completion(chunks, messages)

    def _completion(self, chunks: list[Any], messages: Sequence[Message]) -> Completion:
        """The streamed answer assembled by LiteLLM: tool calls, and usage it estimates
        when the provider sent none."""
        if not chunks:
            raise LLMError("the model returned an empty stream", retryable=True)
        built = litellm.stream_chunk_builder(chunks, messages=list(messages))
        if built is None:
            raise LLMError("the model returned an empty stream", retryable=True)
        message = built.choices[0].message  # type: ignore[union-attr]
        calls = tuple(
            ToolCall(c.id or f"call_{i}", c.function.name or "", c.function.arguments or "{}")
            for i, c in enumerate(message.tool_calls or [])
        )
        usage_block = getattr(built, "usage", None)
        prompt = int(getattr(usage_block, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage_block, "completion_tokens", 0) or 0)
        try:
            cost = float(litellm.completion_cost(completion_response=built) or 0.0)
        except Exception:  # unknown model prices (offline, private deployments): no cost
            cost = 0.0
        return Completion(
            text=message.content or "",
            tool_calls=calls,
            usage=Usage(prompt, completion, cost),
            model=getattr(built, "model", None),
        )


def _counted(last: Any, text: str, usage: Any) -> Completion:
    """A text answer whose provider sent its usage: assembled here, priced from that usage
    (LiteLLM's own price on the usage chunk, else its price table), without rebuilding the
    whole response (``stream_chunk_builder`` and ``completion_cost`` re-walk every chunk:
    a few milliseconds per call, bench/ runs)."""
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    model = getattr(last, "model", None)
    cost = getattr(usage, "cost", None)
    if cost is None:
        provider = (getattr(last, "_hidden_params", None) or {}).get("custom_llm_provider")
        try:
            prices = litellm.cost_per_token(
                model=model or "",
                prompt_tokens=prompt,
                completion_tokens=completion,
                custom_llm_provider=provider,
            )
            cost = sum(prices)
        except Exception:  # unknown model prices (offline, private deployments): no cost
            cost = 0.0
    return Completion(text=text, tool_calls=(), usage=Usage(prompt, completion, float(cost)),
                      model=model)  # fmt: skip


def _as_llm_error(exc: Exception) -> LLMError:
    status = getattr(exc, "status_code", None)
    message = str(getattr(exc, "message", None) or exc).strip() or type(exc).__name__
    if len(message) > 500:
        message = message[:497] + "..."
    prefix = f"{type(exc).__name__}" + (f" ({status})" if status else "")
    retryable = isinstance(exc, _RETRYABLE) or (isinstance(status, int) and status >= 500)
    provider = getattr(exc, "llm_provider", None)
    return LLMError(
        f"{prefix}: {message}",
        retryable=retryable,
        provider=provider if isinstance(provider, str) and provider else None,
    )
