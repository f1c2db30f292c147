from __future__ import annotations

import asyncio

from chatsys.domain.health.readiness import CheckReadiness, ComponentState, ProbeResult


class Probe:
    def __init__(
        self,
        name: str,
        result: ProbeResult | None = None,
        *,
        delay: float = 0.0,
        error: Exception | None = None,
    ) -> None:
        self.name = name
        self._result = result or ProbeResult.ok()
        self._delay = delay
        self._error = error

    async def check(self) -> ProbeResult:
        await asyncio.sleep(self._delay)
        if self._error is not None:
            raise self._error
        return self._result


async def test_ready_when_every_component_is_ok() -> None:
    report = await CheckReadiness([Probe("a"), Probe("b", ProbeResult.ok(workers=2))]).execute()
    assert report.ready
    assert [c.name for c in report.components] == ["a", "b"]
    assert report.components[1].result.info == {"workers": 2}


async def test_a_down_component_makes_the_service_unready() -> None:
    report = await CheckReadiness([Probe("a"), Probe("b", ProbeResult.down("gone"))]).execute()
    assert not report.ready
    assert report.components[1].result.detail == "gone"


async def test_a_raising_probe_is_reported_not_propagated() -> None:
    report = await CheckReadiness([Probe("db", error=ConnectionError("refused"))]).execute()
    assert report.components[0].result.state is ComponentState.DOWN
    assert report.components[0].result.detail == "ConnectionError: refused"


async def test_a_hanging_probe_is_cut_off_and_others_still_report() -> None:
    report = await CheckReadiness([Probe("slow", delay=5), Probe("fast")], timeout=0.1).execute()
    slow, fast = report.components
    assert slow.result.detail == "no answer within 0.1s"
    assert fast.result.state is ComponentState.OK
    assert slow.latency_ms < 1000
