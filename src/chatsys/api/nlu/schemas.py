"""Response models of the analysis (``POST /v1/analyze``, a task's ``analysis``, the
``task.analyzed`` event) and of the agent catalogue: the JSON ``Analysis.as_dict()``
writes, field by field (``Shape`` keeps any key a newer domain adds)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from chatsys.api.responses import Answer, DocumentedAs, Shape
from chatsys.domain.nlu import Analysis, Intent
from chatsys.domain.planning.planner import Role

RoleName = Annotated[str, DocumentedAs(Role, name="AgentRole")]  # the access Role is "Role"

Complexity = Literal["low", "medium", "high"]
IntentName = Annotated[str, DocumentedAs(Intent)]


class IntentScore(Shape):
    intent: IntentName
    confidence: float = Field(ge=0, le=1)


class EntitiesOut(Shape):
    """Spans found in the text (exact, never invented), each list in order of appearance."""

    file_paths: list[str]
    urls: list[str]
    languages: list[str] = Field(description="canonical names: `python`, `go`, `cpp`, ...")
    frameworks: list[str] = Field(description="canonical names: `fastapi`, `postgresql`, ...")
    versions: list[str]
    errors: list[str] = Field(description="error names and messages: `KeyError: 'id'`")
    identifiers: list[str] = Field(description="`backticked` names")


class ContextOut(Shape):
    """What the analysis took from the conversation's earlier messages."""

    follow_up: bool = Field(description="the text continues an earlier request")
    subject: str | None = Field(description="the earlier request it follows up (200 chars)")
    previous_intent: IntentName | None
    history_used: int = Field(ge=0, description="earlier messages looked at")


class AnalysisOut(Shape):
    intent: IntentName = Field(description="the primary intent")
    confidence: float = Field(ge=0, le=1)
    secondary: list[IntentScore] = Field(description="up to 3 runner-up intents, best first")
    entities: EntitiesOut
    technologies: list[str] = Field(description="languages then frameworks, deduplicated")
    complexity: Complexity
    context: ContextOut
    analyzer: str = Field(
        description="`rules`, `llm`, or `rules (llm fallback: <reason>)` when the model's "
        "answer could not be used",
        examples=["rules"],
    )

    @classmethod
    def of(cls, analysis: Analysis) -> AnalysisOut:
        return cls.model_validate(analysis.as_dict())


class AgentOut(Shape):
    name: str
    role: RoleName
    model: str = Field(description="the model this role's calls go to")
    temperature: float
    tools: list[str] = Field(
        description="the tool names the role may use: glob patterns, the first that matches "
        "decides, `!` refuses (`chatsys__*`, `!workspace__*`, `*`)"
    )
    system_prompt: str


class AgentsOut(Answer):
    items: list[AgentOut]

    @classmethod
    def of(cls, catalogue: list[dict[str, Any]]) -> AgentsOut:
        return cls.model_validate({"items": catalogue})
