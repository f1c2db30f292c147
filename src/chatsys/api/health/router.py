"""Liveness and readiness."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from chatsys import __version__
from chatsys.api.health.deps import CheckReadinessDep, LlmInfoDep

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    status: Literal["ok"]


class ComponentOut(BaseModel):
    status: Literal["ok", "down"]
    latency_ms: float
    detail: str | None = None
    info: dict[str, Any] = {}


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    components: dict[str, ComponentOut]
    llm: dict[str, Any]
    version: str


@router.get("/healthz", response_model=Liveness, summary="Liveness: the process answers")
async def healthz() -> Liveness:
    return Liveness(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: Postgres, Redis and a worker all answer",
    responses={503: {"model": Readiness, "description": "a component is down"}},
)
async def readyz(
    llm: LlmInfoDep,
    readiness: CheckReadinessDep,
) -> JSONResponse:
    report = await readiness.execute()
    body = Readiness(
        status="ready" if report.ready else "unavailable",
        components={
            c.name: ComponentOut(
                status=c.result.state.value,
                latency_ms=c.latency_ms,
                detail=c.result.detail,
                info=c.result.info,
            )
            for c in report.components
        },
        llm=llm,
        version=__version__,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if report.ready else 503)
