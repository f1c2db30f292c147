"""The model-backed analyser against a hand-written fake of the LLM port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import pytest

from chatsys.domain.llm.ports import Completion, LLMEvent, Message
from chatsys.domain.nlu import Intent
from chatsys.domain.nlu.llm_analyzer import LLMAnalyzer
from chatsys.domain.shared.errors import LLMError


class ScriptedLLM:
    def __init__(self, answer: str | Exception, delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.json_mode: bool | None = None

    async def stream(
        self,
        *,
        role: str,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] | None = None,
        model: str | None = None,
        json_mode: bool = False,
    ) -> AsyncIterator[LLMEvent]:
        self.json_mode = json_mode
        await asyncio.sleep(self.delay)
        if isinstance(self.answer, Exception):
            raise self.answer
        yield Completion(self.answer)


TEXT = "Add docstrings to utils/strings.py please"


async def test_a_valid_answer_sets_the_intent_and_keeps_exact_entities() -> None:
    llm = ScriptedLLM(
        '{"intent": "documentation", "confidence": 0.82, "complexity": "low", '
        '"secondary": [{"intent": "refactoring", "confidence": 0.1}]}'
    )
    analysis = await LLMAnalyzer(llm).analyze_request(TEXT)
    assert llm.json_mode is True
    assert analysis.analyzer == "llm"
    assert analysis.primary is Intent.DOCUMENTATION
    assert analysis.confidence == 0.82
    assert analysis.secondary == ((Intent.REFACTORING, 0.1),)
    assert analysis.entities.file_paths == ("utils/strings.py",)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("Sure! It is documentation.", "JSONDecodeError"),
        ('{"intent": "poetry", "confidence": 0.9}', "'poetry' is not one of the 12 intents"),
        ('{"intent": "testing", "confidence": 7}', "outside 0..1"),
        (LLMError("503 overloaded", retryable=True), "LLMError: 503 overloaded"),
    ],
)
async def test_any_bad_answer_falls_back_to_the_rules(answer: str | Exception, reason: str) -> None:
    analysis = await LLMAnalyzer(ScriptedLLM(answer)).analyze_request(TEXT)
    assert analysis.primary is Intent.DOCUMENTATION  # what the rules say
    assert analysis.analyzer.startswith("rules (llm fallback: ")
    assert reason in analysis.analyzer


async def test_a_slow_model_falls_back_in_time() -> None:
    analysis = await LLMAnalyzer(ScriptedLLM("{}", delay=5), timeout=0.05).analyze_request(TEXT)
    assert "TimeoutError" in analysis.analyzer
