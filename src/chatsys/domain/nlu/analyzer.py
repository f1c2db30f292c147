"""The deterministic analyser: fast (microseconds), no network, explainable.

Rules:
- every intent's score is the sum of the weights of its cues found in the text
  (each cue counts once), plus structural evidence: an error message or
  exception name points at debugging, a bare greeting at general chat;
- the primary intent is the best score (ties go to the more specific intent,
  in ``_TIE_ORDER``); confidences are each score's share of the total;
- a follow-up ("now add tests for it") keeps the subject of the conversation:
  the entities of the earlier messages are carried over, and a follow-up with
  no cue of its own keeps the earlier intent;
- with no cue at all: a question is a research question, a short remark is
  general chat, anything else is a request for code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from chatsys.domain.nlu.entities import Entities, extract_entities
from chatsys.domain.nlu.intents import CUES, Intent

Complexity = Literal["low", "medium", "high"]
_COMPLEXITIES: tuple[Complexity, ...] = ("low", "medium", "high")

_TIE_ORDER = [
    Intent.DEBUGGING,
    Intent.TESTING,
    Intent.REFACTORING,
    Intent.CODE_REVIEW,
    Intent.DEVOPS_DEPLOYMENT,
    Intent.DATA_ANALYSIS,
    Intent.DOCUMENTATION,
    Intent.FILE_OPERATION,
    Intent.ARCHITECTURE_DESIGN,
    Intent.CODE_GENERATION,
    Intent.RESEARCH_QUESTION,
    Intent.GENERAL_CHAT,
]
_RANK = {intent: i for i, intent in enumerate(_TIE_ORDER)}

_FOLLOW_UP = re.compile(
    r"^(?:now|also|and|then|next|ok(?:ay)?,? now|great,? now|same|again)\b|"
    r"\b(?:it|this|that|them|those|these|the same|above|previous|earlier)\b",
    re.IGNORECASE,
)
_QUESTION_START = re.compile(
    r"^(?:what|why|how|which|when|where|who|is|are|can|could|should|does|do|will|would)\b",
    re.IGNORECASE,
)
_BIG_WORDS = re.compile(
    r"\b(?:entire|whole|all (?:the|our)|end.to.end|production|scal(?:e|able)|distributed|"
    r"microservices?|migrat\w*|multi.\w+|across|system|platform|pipeline|architecture)\b",
    re.IGNORECASE,
)
_WORDS = re.compile(r"\w+")
_FILE_VERB = re.compile(
    r"^(?:please )?(?:open|read|show|print|cat|copy|move|rename|delete|remove|zip|unzip|"
    r"extract|save|append|list|create|touch|find)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Context:
    follow_up: bool = False
    subject: str | None = None
    previous_intent: Intent | None = None
    history_used: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "follow_up": self.follow_up,
            "subject": self.subject,
            "previous_intent": self.previous_intent.value if self.previous_intent else None,
            "history_used": self.history_used,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Context:
        previous = data.get("previous_intent")
        return cls(
            follow_up=bool(data.get("follow_up", False)),
            subject=data.get("subject"),
            previous_intent=Intent(previous) if previous is not None else None,
            history_used=int(data.get("history_used", 0)),
        )


@dataclass(frozen=True, slots=True)
class Analysis:
    primary: Intent
    confidence: float
    secondary: tuple[tuple[Intent, float], ...]
    entities: Entities
    complexity: Complexity
    context: Context = field(default_factory=Context)
    analyzer: str = "rules"

    @property
    def technologies(self) -> tuple[str, ...]:
        return self.entities.technologies

    def as_dict(self) -> dict[str, Any]:
        return {
            "intent": self.primary.value,
            "confidence": self.confidence,
            "secondary": [{"intent": i.value, "confidence": c} for i, c in self.secondary],
            "entities": self.entities.as_dict(),
            "technologies": list(self.technologies),
            "complexity": self.complexity,
            "context": self.context.as_dict(),
            "analyzer": self.analyzer,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Analysis:
        """The inverse of ``as_dict`` (``technologies`` follow from the entities)."""
        complexity = data["complexity"]
        if complexity not in _COMPLEXITIES:
            raise ValueError(f"complexity must be one of {_COMPLEXITIES}, not {complexity!r}")
        return cls(
            primary=Intent(data["intent"]),
            confidence=float(data["confidence"]),
            secondary=tuple(
                (Intent(s["intent"]), float(s["confidence"])) for s in data.get("secondary", ())
            ),
            entities=Entities.from_dict(data.get("entities", {})),
            complexity=complexity,
            context=Context.from_dict(data.get("context", {})),
            analyzer=str(data.get("analyzer", "rules")),
        )


def _scores(text: str, entities: Entities) -> dict[Intent, float]:
    scores = dict.fromkeys(Intent, 0.0)
    for intent, cues in CUES.items():
        scores[intent] = sum(weight for pattern, weight in cues if pattern.search(text))
    if entities.errors:
        scores[Intent.DEBUGGING] += 3.5
    if entities.file_paths and _FILE_VERB.match(text.strip()):
        scores[Intent.FILE_OPERATION] += 3.0  # "open main.py", "copy a.csv to b/"
    words = len(_WORDS.findall(text))
    technical = entities.technologies or entities.file_paths or entities.identifiers
    if words <= 6 and not technical and scores[Intent.GENERAL_CHAT] > 0:
        scores[Intent.GENERAL_CHAT] += 2.0
    return scores


def _complexity(text: str, entities: Entities) -> Complexity:
    words = len(_WORDS.findall(text))
    asks = len(re.findall(r"(?:^|\n)\s*(?:[-*]|\d+[.)])\s|\band then\b|\balso\b|;", text))
    points = words / 40 + len(entities.technologies) * 0.5 + asks * 0.5
    points += len(_BIG_WORDS.findall(text))
    if points < 1.5:
        return "low"
    return "medium" if points < 3.5 else "high"


def _fallback(text: str) -> Intent:
    stripped = text.strip()
    if stripped.endswith("?") or _QUESTION_START.match(stripped):
        return Intent.RESEARCH_QUESTION
    if len(_WORDS.findall(stripped)) <= 4:
        return Intent.GENERAL_CHAT
    return Intent.CODE_GENERATION


class RuleBasedAnalyzer:
    """``analyze(text, history)``: history is the conversation's earlier user messages,
    oldest first."""

    name = "rules"

    def analyze(self, text: str, history: Sequence[str] = ()) -> Analysis:
        entities = extract_entities(text)
        scores = _scores(text, entities)
        context = Context()
        previous: tuple[Analysis, str] | None = None
        if history and _FOLLOW_UP.search(text):
            previous = self._subject(history)
        if previous is not None:
            earlier, subject = previous
            context = Context(
                follow_up=True,
                subject=subject,
                previous_intent=earlier.primary,
                history_used=len(history),
            )
            entities = entities.merged_with(earlier.entities)

        ranked = sorted(
            ((i, s) for i, s in scores.items() if s > 0),
            key=lambda pair: (-pair[1], _RANK[pair[0]]),
        )
        if not ranked:
            primary = context.previous_intent if previous is not None else _fallback(text)
            assert primary is not None
            return Analysis(primary, 0.5, (), entities, _complexity(text, entities), context)

        total = sum(s for _, s in ranked)
        primary, best = ranked[0]
        confidence = round(min(0.99, best / total), 3)
        secondary = tuple((i, round(s / total, 3)) for i, s in ranked[1:4])
        return Analysis(
            primary, confidence, secondary, entities, _complexity(text, entities), context
        )

    def _subject(self, history: Sequence[str]) -> tuple[Analysis, str] | None:
        """The latest earlier message that was about something (not small talk)."""
        for earlier in reversed(history[-10:]):
            analysis = self.analyze(earlier)
            if analysis.primary is not Intent.GENERAL_CHAT:
                return analysis, earlier[:200]
        return None
