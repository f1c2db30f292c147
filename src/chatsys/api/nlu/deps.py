"""What the nlu routes ask for: one provider and one ``Annotated`` alias per use case,
filled by ``chatsys.bootstrap.api``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends

from chatsys.api.wiring import Provider
from chatsys.domain.nlu.analyze_text import AnalyzeText

AgentCatalogue = list[dict[str, Any]]
"""The role agents as ``GET /v1/agents`` lists them."""

analyze = Provider[AnalyzeText]("analyze")
AnalyzeTextDep = Annotated[AnalyzeText, Depends(analyze)]

agents = Provider[AgentCatalogue]("agents")
AgentCatalogueDep = Annotated[AgentCatalogue, Depends(agents)]
