"""An analyser that asks the model, and falls back to the deterministic one on any error.

Rules:
- the model is asked for a JSON object (structured output where the provider
  supports it): the intent out of the 12, a confidence, secondary intents, the
  technologies and a complexity;
- entities and conversation context always come from the deterministic
  extractor (exact spans, no invention);
- anything wrong (a failed or slow call, text that is not JSON, an intent not
  among the 12, a confidence out of range) means the deterministic analysis is
  used, and ``analyzer`` says so with the reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

from chatsys.domain.llm.ports import LLM, Completion
from chatsys.domain.nlu.analyzer import Analysis, RuleBasedAnalyzer
from chatsys.domain.nlu.intents import Intent

_PROMPT = (
    "Classify the user's request for a software engineering assistant. Answer with one JSON "
    'object only: {"intent": one of [' + ", ".join(f'"{i.value}"' for i in Intent) + "], "
    '"confidence": 0..1, "secondary": [{"intent": ..., "confidence": ...}], '
    '"complexity": "low"|"medium"|"high"}.'
)


class TaskAnalyzer(Protocol):
    async def analyze_request(self, text: str, history: Sequence[str] = ()) -> Analysis: ...


class RulesTaskAnalyzer:
    """The deterministic analyser behind the ``TaskAnalyzer`` port."""

    def __init__(self, rules: RuleBasedAnalyzer | None = None) -> None:
        self._rules = rules or RuleBasedAnalyzer()

    async def analyze_request(self, text: str, history: Sequence[str] = ()) -> Analysis:
        return self._rules.analyze(text, history)


def _parse(raw: str) -> dict[str, Any]:
    text = raw.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    return data


def _intent(value: object) -> Intent:
    try:
        return Intent(str(value))
    except ValueError:
        raise ValueError(f"'{value}' is not one of the 12 intents") from None


def _confidence(value: object) -> float:
    number = float(value)  # type: ignore[arg-type]
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"confidence {number} is outside 0..1")
    return round(number, 3)


class LLMAnalyzer:
    def __init__(
        self, llm: LLM, *, fallback: RuleBasedAnalyzer | None = None, timeout: float = 15.0
    ) -> None:
        self._llm = llm
        self._rules = fallback or RuleBasedAnalyzer()
        self._timeout = timeout

    async def analyze_request(self, text: str, history: Sequence[str] = ()) -> Analysis:
        base = self._rules.analyze(text, history)
        try:
            answer = await asyncio.wait_for(self._ask(text, history), self._timeout)
            data = _parse(answer.text)
            primary = _intent(data.get("intent"))
            confidence = _confidence(data.get("confidence", 0.5))
            secondary = tuple(
                (_intent(s.get("intent")), _confidence(s.get("confidence", 0.0)))
                for s in data.get("secondary", [])[:3]
                if isinstance(s, dict)
            )
            complexity = data.get("complexity", base.complexity)
            if complexity not in ("low", "medium", "high"):
                complexity = base.complexity
        except Exception as exc:  # any failure: the deterministic analysis stands
            reason = f"{type(exc).__name__}: {exc}"[:200]
            return replace(base, analyzer=f"rules (llm fallback: {reason})")
        return replace(
            base,
            primary=primary,
            confidence=confidence,
            secondary=secondary,
            complexity=complexity,
            analyzer="llm",
        )

    async def _ask(self, text: str, history: Sequence[str]) -> Completion:
        context = "\n".join(f"- {h[:300]}" for h in history[-5:])
        user = f"Earlier messages:\n{context}\n\nRequest:\n{text}" if context else text
        messages = [{"role": "system", "content": _PROMPT}, {"role": "user", "content": user}]
        async for event in self._llm.stream(role="assistant", messages=messages, json_mode=True):
            if isinstance(event, Completion):
                return event
        raise ValueError("the model stream ended without a completion")
