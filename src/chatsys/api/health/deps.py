"""What the health routes ask for: one provider and one ``Annotated`` alias per use case,
filled by ``chatsys.bootstrap.api``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends

from chatsys.api.wiring import Provider
from chatsys.domain.health.readiness import CheckReadiness

LlmInfo = dict[str, Any]
"""What ``/readyz`` says of the model setup (offline or provider, models, fallbacks)."""

readiness = Provider[CheckReadiness]("readiness")
CheckReadinessDep = Annotated[CheckReadiness, Depends(readiness)]

llm = Provider[LlmInfo]("llm")
LlmInfoDep = Annotated[LlmInfo, Depends(llm)]
