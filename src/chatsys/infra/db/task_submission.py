"""The submit write: a new task, its first event, its outbox entry and the audit rows,
in one statement (one round trip instead of five; bench/ submit)."""

from __future__ import annotations

from typing import Any, cast
from uuid import uuid4

from sqlalchemy import Integer, String, Table, bindparam, func, literal, select, union_all
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.types import Uuid

from chatsys.domain.access.model import AuditEntry
from chatsys.infra.db.access_repository import AUDITED_EVENTS, audit_details
from chatsys.infra.db.models import AuditLogRow, TaskEventRow, TaskOutboxRow, TaskRow

_TASKS = cast(Table, TaskRow.__table__)
_EVENTS = cast(Table, TaskEventRow.__table__)
_OUTBOX = cast(Table, TaskOutboxRow.__table__)
_AUDIT = cast(Table, AuditLogRow.__table__)
# What a new task sets (the rest keeps its server default; last_seq is set to 1 here).
_UNSET = frozenset({"last_seq", "heartbeat_at", "cancel_requested_at"})
TASK_COLUMNS = tuple(c.name for c in _TASKS.columns if c.name not in _UNSET)


def _audit_row(prefix: str, task: Any, details: Any) -> Any:
    return select(
        bindparam(f"{prefix}_event_id", type_=Uuid),
        bindparam(f"{prefix}_action", type_=String),
        bindparam(f"{prefix}_action", type_=String),
        bindparam(f"{prefix}_actor", type_=String),
        bindparam(f"{prefix}_agent", type_=String),
        task.c.id,
        bindparam(f"{prefix}_target", type_=String),
        details,
    )


def _statement(*, event_audited: bool) -> Any:
    """The task inserted with ``last_seq`` 1; from its row: event 1, the outbox entry
    (stamped as dispatched now, as ``SqlOutbox.add``), the audit entry and, for an
    audited event type, the event's audit row (as ``SqlEventLog.append`` writes it).
    Returns the outbox entry's id and the event's ``created_at``."""
    values = {name: bindparam(f"t_{name}", type_=_TASKS.c[name].type) for name in TASK_COLUMNS}
    task = (
        insert(_TASKS)
        .values(**values, last_seq=literal(1, Integer))
        .returning(_TASKS.c.id, _TASKS.c.conversation_id)
        .cte("task")
    )
    event = (
        insert(_EVENTS)
        .from_select(
            ["task_id", "seq", "type", "data"],
            select(
                task.c.id,
                literal(1, Integer),
                bindparam("e_type", type_=String),
                bindparam("e_data", type_=JSONB),
            ),
        )
        .returning(_EVENTS.c.created_at)
        .cte("event")
    )
    entry = (
        insert(_OUTBOX)
        .from_select(
            ["task_id", "dispatched_at", "attempts"],
            select(task.c.id, func.now(), literal(1, Integer)),
        )
        .returning(_OUTBOX.c.id)
        .cte("entry")
    )
    rows = [_audit_row("a", task, bindparam("a_details", type_=JSONB))]
    if event_audited:
        seq_first = func.jsonb_build_object("seq", literal(1, Integer))
        details = seq_first.op("||")(bindparam("ea_details", type_=JSONB))
        rows.append(_audit_row("ea", task, details))
    columns = ["event_id", "event_type", "action", "actor", "agent", "task_id", "target", "details"]
    trail = insert(_AUDIT).from_select(columns, union_all(*rows) if len(rows) > 1 else rows[0])
    return (
        select(entry.c.id, event.c.created_at)
        .select_from(entry)
        .join(event, literal(True))
        .add_cte(trail.cte("trail"))
    )


_SUBMIT = {audited: _statement(event_audited=audited) for audited in (False, True)}


def submit_statement(event_type: str) -> Any:
    return _SUBMIT[event_type in AUDITED_EVENTS]


def submit_params(
    task_values: dict[str, Any], event_type: str, event_data: dict[str, Any], audit: AuditEntry
) -> dict[str, Any]:
    params = {f"t_{name}": task_values[name] for name in TASK_COLUMNS}
    params.update(e_type=event_type, e_data=event_data)
    params.update(
        a_event_id=audit.event_id, a_action=audit.action, a_actor=audit.actor,
        a_agent=audit.agent, a_target=audit.target, a_details=audit.details,
    )  # fmt: skip
    if event_type in AUDITED_EVENTS:
        agent = event_data.get("agent")
        params.update(
            ea_event_id=uuid4(), ea_action=event_type, ea_actor="system",
            ea_agent=agent if isinstance(agent, str) else None, ea_target=None,
            ea_details=audit_details(event_data),
        )  # fmt: skip
    return params
