"""Readiness: is every component the service needs answering?"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatsys.domain.health.ports import HealthProbe


class ComponentState(StrEnum):
    OK = "ok"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    state: ComponentState
    detail: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def ok(cls, **info: Any) -> ProbeResult:
        return cls(ComponentState.OK, None, info)

    @classmethod
    def down(cls, detail: str, **info: Any) -> ProbeResult:
        return cls(ComponentState.DOWN, detail, info)


@dataclass(frozen=True, slots=True)
class ComponentReport:
    name: str
    result: ProbeResult
    latency_ms: float


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    components: tuple[ComponentReport, ...]

    @property
    def ready(self) -> bool:
        return all(c.result.state is ComponentState.OK for c in self.components)


class CheckReadiness:
    """Run every probe concurrently, each bounded by ``timeout`` seconds.

    Rules: a probe that raises or exceeds its timeout counts as ``down`` with a
    short reason (the exception's type and message, never a traceback); the
    service is ready only when every component is ``ok``.
    """

    def __init__(self, probes: Sequence[HealthProbe], *, timeout: float = 2.0) -> None:
        self._probes = tuple(probes)
        self._timeout = timeout

    async def execute(self) -> ReadinessReport:
        reports = await asyncio.gather(*(self._run(p) for p in self._probes))
        return ReadinessReport(tuple(reports))

    async def _run(self, probe: HealthProbe) -> ComponentReport:
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(probe.check(), self._timeout)
        except TimeoutError:
            result = ProbeResult.down(f"no answer within {self._timeout:g}s")
        except Exception as exc:  # a probe must never break the report
            result = ProbeResult.down(f"{type(exc).__name__}: {exc}"[:300])
        elapsed = (time.perf_counter() - started) * 1000
        return ComponentReport(probe.name, result, round(elapsed, 2))
