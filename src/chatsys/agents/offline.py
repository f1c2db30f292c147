"""The built-in offline model: a LiteLLM custom provider that needs no network.

With no provider configured, every role is served by this model so the whole
pipeline (streaming, tool calls, usage accounting) runs on any machine. It is
deterministic, streams word by word, says in its text that it is the offline
model, and asks for a built-in tool when the request contains arithmetic or
asks for the time, and for the workspace tools when it asks to read a file or
list the workspace (then it summarises what it read), so the tool loop is
exercised too. It never pretends to have solved the request.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from litellm.llms.custom_llm import CustomLLM
from litellm.types.utils import GenericStreamingChunk

from chatsys.agents.config import OFFLINE_MODEL as MODEL
from chatsys.agents.config import OFFLINE_PROVIDER as PROVIDER

__all__ = ["MODEL", "PROVIDER", "OfflineModel", "register_offline_model"]

_ARITHMETIC = re.compile(r"\(?-?\d+(?:\.\d+)?(?:\s*(?:\*\*|[-+*/%])\s*\(?-?\d+(?:\.\d+)?\)?)+")
_TIME = re.compile(r"\b(?:what time|current time|time is it|today'?s date|what day)\b", re.I)
_ROLE = re.compile(r"as the (\w+)\)")
_REQUEST = re.compile(r"## The user's request\n(.*?)(?:\n\n## |\Z)", re.S)
_STEP = re.compile(r"\(step '([^']+)'")
_FILE = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.[A-Za-z0-9]{1,8})(?![\w/-])")
_READ = re.compile(r"\b(?:read|open|show|summari[sz]e|cat|contents? of|look at)\b", re.I)
_LIST = re.compile(r"\b(?:list|what files|which files)\b", re.I)
READ_TOOL = "workspace__read_file"
LIST_TOOL = "workspace__list_dir"

_ROLE_LINES = {
    "architect": "I would outline the components, their interfaces and the main trade-offs.",
    "developer": "I would write the implementation and handle its edge cases.",
    "reviewer": "I would check correctness, security and readability and list concrete fixes.",
    "qa": "I would write tests for the main path, the boundaries and the failure modes.",
    "researcher": "I would answer the question and note where the facts are uncertain.",
    "writer": "I would write it up clearly for the reader.",
    "devops": "I would write the pipeline or infrastructure configuration and a rollback plan.",
    "analyst": "I would state the method, compute the figures and separate findings from guesses.",
    "assistant": "I would combine the team's work into one answer.",
    "operator": "I would carry out the file operation in the workspace and report the result.",
}


def _words(text: str) -> int:
    return len(re.findall(r"\S+", text))


def _content(message: dict[str, Any]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _called(messages: list[dict[str, Any]]) -> set[str]:
    names = set()
    for message in messages:
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                names.add(str(function.get("name")))
    return names


def _summary(content: str) -> str:
    """A deterministic summary of a file that was read: its size and its first lines."""
    lines = [line.strip() for line in content.splitlines() if line.strip()]
    if not lines:
        return "Summary: the file is empty."
    opening = " / ".join(lines[:2])
    if len(opening) > 160:
        opening = opening[:157] + "..."
    return (
        f"Summary: the file has {len(lines)} non-empty lines and {_words(content)} words; "
        f'it begins: "{opening}".'
    )


class OfflineModel(CustomLLM):
    """Answers deterministically from the prompt; see the module docstring."""

    def _plan_reply(
        self, messages: list[dict[str, Any]], tools: list[Any] | None
    ) -> dict[str, Any]:
        last_user = next((_content(m) for m in reversed(messages) if m.get("role") == "user"), "")
        request_match = _REQUEST.search(last_user)
        request = (request_match.group(1) if request_match else last_user).strip()
        tool_results = [_content(m) for m in messages if m.get("role") == "tool"]
        tool_names = {t.get("function", {}).get("name") for t in tools or [] if isinstance(t, dict)}

        if not tool_results:
            expression = _ARITHMETIC.search(request)
            if expression and "chatsys__calculate" in tool_names:
                return {
                    "tool": "chatsys__calculate",
                    "arguments": {"expression": expression.group(0)},
                }
            if _TIME.search(request) and "chatsys__current_time" in tool_names:
                return {"tool": "chatsys__current_time", "arguments": {}}
            named = _FILE.search(request)
            if named and _READ.search(request) and READ_TOOL in tool_names:
                return {"tool": READ_TOOL, "arguments": {"path": named.group(1)}}
            if _LIST.search(request) and LIST_TOOL in tool_names:
                return {"tool": LIST_TOOL, "arguments": {"path": "."}}

        role_match = _ROLE.search(last_user)
        role = role_match.group(1) if role_match else "assistant"
        step_match = _STEP.search(last_user)
        step = step_match.group(1) if step_match else "answer"
        shown = request if len(request) <= 160 else request[:157] + "..."
        text = (
            f"[chatsys offline model, {role}, step '{step}'] No LLM provider is configured "
            f'(set CHATSYS_MODEL), so this is not a real answer. For the request "{shown}": '
            f"{_ROLE_LINES.get(role, _ROLE_LINES['assistant'])}"
        )
        if tool_results:
            text += " Tool results: " + "; ".join(r[:200] for r in tool_results) + "."
        if READ_TOOL in _called(messages) and tool_results:
            text += " " + _summary(tool_results[-1])
        return {"text": text}

    def _usage(self, messages: list[dict[str, Any]], reply: str) -> dict[str, int]:
        prompt = sum(_words(_content(m)) for m in messages)
        completion = _words(reply)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _chunks(
        self, messages: list[dict[str, Any]], optional_params: dict[str, Any]
    ) -> Iterator[GenericStreamingChunk]:
        plan = self._plan_reply(messages, optional_params.get("tools"))
        if "tool" in plan:
            arguments = json.dumps(plan["arguments"])
            yield {
                "text": "",
                "tool_use": {
                    "id": f"call_{uuid.uuid4().hex[:12]}",
                    "type": "function",
                    "function": {"name": plan["tool"], "arguments": arguments},
                    "index": 0,
                },
                "is_finished": True,
                "finish_reason": "tool_calls",
                "usage": self._usage(messages, arguments),  # type: ignore[typeddict-item]
                "index": 0,
            }
            return
        words = re.findall(r"\S+\s*", plan["text"])
        for word in words:
            yield {
                "text": word,
                "tool_use": None,
                "is_finished": False,
                "finish_reason": "",
                "usage": None,
                "index": 0,
            }
        yield {
            "text": "",
            "tool_use": None,
            "is_finished": True,
            "finish_reason": "stop",
            "usage": self._usage(messages, plan["text"]),  # type: ignore[typeddict-item]
            "index": 0,
        }

    def streaming(self, *args: Any, **kwargs: Any) -> Iterator[GenericStreamingChunk]:
        return self._chunks(kwargs["messages"], kwargs.get("optional_params") or {})

    async def astreaming(self, *args: Any, **kwargs: Any) -> AsyncIterator[GenericStreamingChunk]:  # type: ignore[override]
        for chunk in self._chunks(kwargs["messages"], kwargs.get("optional_params") or {}):
            yield chunk


_registered = False


def register_offline_model() -> None:
    """Make ``chatsys-offline/...`` models answerable by LiteLLM (idempotent)."""
    global _registered  # noqa: PLW0603 - LiteLLM's provider map is itself global
    if _registered:
        return
    import litellm

    litellm.custom_provider_map = [
        *[p for p in litellm.custom_provider_map if p.get("provider") != PROVIDER],
        {"provider": PROVIDER, "custom_handler": OfflineModel()},
    ]
    from litellm.utils import custom_llm_setup

    custom_llm_setup()  # type: ignore[no-untyped-call]
    _registered = True
