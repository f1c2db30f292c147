"""What every chaos scenario checks at its end, counted (the tests assert on the counts,
the bench prints them): every accepted task found and ended, how it ended, completed
steps run again (calls at the fake provider after the step's ``step.completed``),
what resuming stream clients saw twice or never, and the secret grep of every log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.chaos.stack import ChaosStack, Followed, LogGrep, ts
from tests.streams import TERMINAL


@dataclass
class Audit:
    tasks: int = 0
    lost: int = 0  # accepted, then not found or with no terminal event in its log
    not_ended: int = 0
    not_succeeded: int = 0
    gaps: int = 0  # durable logs whose seqs are not 1..n
    steps_rerun: int = 0
    streams: int = 0
    duplicates: int = 0  # events a resuming client got more than once
    missed: int = 0  # events of the log a client never got
    secret_hits: int = 0
    logs: list[LogGrep] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def clean(self) -> bool:
        counts = (self.lost, self.not_ended, self.not_succeeded, self.gaps, self.steps_rerun,
                  self.duplicates, self.missed, self.secret_hits)  # fmt: skip
        return not any(counts)

    def line(self) -> str:
        return (
            f"{self.tasks} tasks: lost {self.lost}, not ended {self.not_ended}, "
            f"not succeeded {self.not_succeeded}, log gaps {self.gaps}, "
            f"completed steps re-run {self.steps_rerun}; {self.streams} streams: "
            f"duplicates {self.duplicates}, missed {self.missed}; "
            f"secret hits {self.secret_hits} in {len(self.logs)} logs"
        )


def _reruns(stack: ChaosStack, task_id: str, events: list[dict[str, Any]]) -> list[str]:
    marker = stack.markers[task_id]
    done: dict[str, list[float]] = {}
    for event in events:
        if event["type"] == "step.completed":
            done.setdefault(event["data"]["step"], []).append(ts(event))
    found = []
    for step, times in done.items():
        again = len(times) - 1 + stack.calls_after(marker, step, min(times))
        if again:
            found.append(f"{task_id}: step {step} run {again} more time(s) after it completed")
    return found


async def audit(stack: ChaosStack, followed: list[Followed]) -> Audit:
    """Read back every task the stack accepted; grep every log it wrote."""
    result = Audit(tasks=len(stack.ids), streams=len(followed))
    logs: dict[str, list[dict[str, Any]]] = {}
    for task_id in stack.ids:
        answer = await stack.clients[0].get(f"/v1/tasks/{task_id}")
        if answer.status_code != 200:
            result.lost += 1
            result.details.append(f"{task_id}: {answer.status_code}")
            continue
        status = answer.json()["status"]
        events = logs[task_id] = await stack.events(task_id)
        ends = [e for e in events if e["type"] in TERMINAL]
        if len(ends) != 1:
            result.lost += 1
            result.details.append(f"{task_id}: {len(ends)} terminal events")
        if status not in {"succeeded", "failed", "cancelled"}:
            result.not_ended += 1
            result.details.append(f"{task_id}: still {status}")
        elif status != "succeeded":
            result.not_succeeded += 1
            result.details.append(f"{task_id}: {status}")
        if [e["seq"] for e in events] != list(range(1, len(events) + 1)):
            result.gaps += 1
            result.details.append(f"{task_id}: log seqs not gapless")
        reruns = _reruns(stack, task_id, events)
        result.steps_rerun += len(reruns)
        result.details += reruns
    for got in followed:
        durable = [e["seq"] for e in logs.get(got.task_id, [])]
        seqs = got.seqs
        result.duplicates += len(seqs) - len(set(seqs))
        result.missed += len(set(durable) - set(seqs))
        if seqs != durable:
            result.details.append(f"stream of {got.task_id}: {seqs} != log {durable}")
        elif [e["type"] for e in got.events] != [e["type"] for e in logs[got.task_id]]:
            result.details.append(f"stream of {got.task_id}: frames differ from the log")
            result.duplicates += 1
    result.logs = stack.grep()
    result.secret_hits = sum(sum(g.hits.values()) for g in result.logs)
    result.details += [f"{g.log}: {g.hits}" for g in result.logs if any(g.hits.values())]
    return result
