"""Analysis of a text without running a task, and the agent catalogue."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from chatsys.api.access.deps import ReaderDep
from chatsys.api.nlu.deps import AgentCatalogueDep, AnalyzeTextDep
from chatsys.api.nlu.schemas import AgentsOut, AnalysisOut
from chatsys.api.problems import problem_response
from chatsys.api.text import NonBlankText
from chatsys.domain.shared.errors import InvalidInput

router = APIRouter(tags=["analysis"])


class AnalyzeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: NonBlankText = Field(min_length=1, max_length=32 * 1024)
    conversation_id: UUID | None = None


@router.post(
    "/v1/analyze",
    summary="Intent, entities and complexity of a text; no task",
    responses={404: problem_response(404, "No such conversation (`conversation_id`)")},
)
async def analyze(body: AnalyzeIn, analyze: AnalyzeTextDep, owner: ReaderDep) -> AnalysisOut:
    if not body.text.strip():
        raise InvalidInput("text must not be blank")
    result = await analyze.execute(body.text, owner=owner, conversation_id=body.conversation_id)
    return AnalysisOut.of(result)


@router.get("/v1/agents", response_model=AgentsOut, summary="The role agents and their models")
async def list_agents(
    agents: AgentCatalogueDep,
) -> AgentsOut:
    return AgentsOut.of(agents)
