"""The port every readiness probe implements."""

from __future__ import annotations

from typing import Protocol

from chatsys.domain.health.readiness import ProbeResult


class HealthProbe(Protocol):
    """Checks one component the service depends on."""

    name: str

    async def check(self) -> ProbeResult: ...
