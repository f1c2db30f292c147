"""The step checkpoint write: a batch of steps upserted in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert

from chatsys.domain.tasks.model import StepRecord
from chatsys.infra.db.models import StepRow

_STEPS = cast(Table, StepRow.__table__)

_WRITTEN = (
    "agent", "instruction", "depends_on", "status", "output", "error", "attempt",
    "prompt_tokens", "completion_tokens", "cost_usd", "started_at", "finished_at",
)  # fmt: skip


@lru_cache(maxsize=32)
def upsert_steps(count: int) -> Any:
    """Insert or update ``count`` steps of task ``b_task_id``; a new step goes after the
    task's existing ones (its position counted in the same statement, on the statement's
    snapshot, so every new step of the batch gets the same base). One round trip, built
    once per batch size."""
    existing = (
        select(func.count())
        .select_from(_STEPS)
        .where(_STEPS.c.task_id == bindparam("b_task_id"))
        .scalar_subquery()
    )
    rows = [
        {
            "task_id": bindparam("b_task_id"),
            "key": bindparam(f"b_key_{i}", type_=_STEPS.c.key.type),
            "position": existing + i,
            **{c: bindparam(f"b_{c}_{i}", type_=_STEPS.c[c].type) for c in _WRITTEN},
        }
        for i in range(count)
    ]
    statement = insert(_STEPS).values(rows)
    return statement.on_conflict_do_update(
        index_elements=["task_id", "key"],
        set_={c: statement.excluded[c] for c in _WRITTEN},
    )


def step_params(task_id: UUID, steps: Sequence[StepRecord]) -> dict[str, Any]:
    params: dict[str, Any] = {"b_task_id": task_id}
    for i, step in enumerate(steps):
        values = {
            "key": step.key,
            "agent": step.agent,
            "instruction": step.instruction,
            "depends_on": list(step.depends_on),
            "status": step.status.value,
            "output": step.output,
            "error": step.error,
            "attempt": step.attempt,
            "prompt_tokens": step.usage.prompt_tokens,
            "completion_tokens": step.usage.completion_tokens,
            "cost_usd": Decimal(str(step.usage.cost_usd)),
            "started_at": step.started_at,
            "finished_at": step.finished_at,
        }
        params.update({f"b_{name}_{i}": value for name, value in values.items()})
    return params


def unique_by_key(steps: Sequence[StepRecord]) -> list[StepRecord]:
    """One record per key (the last given), in the order keys first appear: one
    statement may not upsert the same row twice."""
    last = {step.key: step for step in steps}
    return list(last.values())


__all__ = ["step_params", "unique_by_key", "upsert_steps"]
