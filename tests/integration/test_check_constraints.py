"""The CHECK constraints that list an enum's values, as Postgres holds them, equal the enums.

``alembic check`` (tests/integration/test_migrations.py) compares tables, columns,
indexes and foreign keys, but never the text of a CHECK constraint: a migration that
writes ``status IN (...)`` by hand and forgets a value (or a value added to a domain
enum with no migration) passes it, and the first row with that value is refused at
run time. So this reads every CHECK constraint of a database migrated to head with
``pg_get_constraintdef`` and compares the values it allows with the Python enum.
"""

from __future__ import annotations

import asyncio
import re
from enum import StrEnum

import asyncpg
from sqlalchemy import CheckConstraint

from chatsys.domain.access.model import Role as KeyRole
from chatsys.domain.approvals.model import ApprovalStatus
from chatsys.domain.conversations.model import MessageRole
from chatsys.domain.tasks.model import Priority, StepStatus, TaskStatus
from chatsys.domain.webhooks.model import DeliveryStatus
from chatsys.infra.db import migrations
from chatsys.infra.db.models import Base
from tests.support import plain_dsn

# Constraint name (the naming convention's ck_<table>_<name>) -> (column, enum).
ENUM_CHECKS: dict[str, tuple[str, type[StrEnum]]] = {
    "ck_tasks_status": ("status", TaskStatus),
    "ck_steps_status": ("status", StepStatus),
    "ck_messages_role": ("role", MessageRole),
    "ck_webhook_deliveries_status": ("status", DeliveryStatus),
    "ck_api_keys_role": ("role", KeyRole),
    "ck_api_keys_default_priority": ("default_priority", Priority),
    "ck_approvals_status": ("status", ApprovalStatus),
}

_LITERAL = re.compile(r"'((?:[^']|'')*)'")
# Postgres renders ``status IN ('a', 'b')`` on a varchar column as
# ``CHECK (((status)::text = ANY ((ARRAY['a'::character varying, ...])::text[])))``.
_MEMBERSHIP = re.compile(r"^CHECK \(+(\w+)\)::text = ANY \(+ARRAY\[(.*)\]\)::text\[\]\)+$")

_CHECKS_SQL = """
SELECT con.conname AS name, pg_get_constraintdef(con.oid) AS definition
FROM pg_constraint con
JOIN pg_class rel ON rel.oid = con.conrelid
JOIN pg_namespace ns ON ns.oid = rel.relnamespace
WHERE con.contype = 'c' AND ns.nspname = 'public'
"""


def _allowed(definition: str) -> tuple[str, set[str]] | None:
    """The column and the values a membership CHECK allows; None for any other check."""
    if not _LITERAL.search(definition):
        return None  # "attempt >= 0", "seq > 0": no values listed
    match = _MEMBERSHIP.match(definition)
    assert match, f"a CHECK with literals that is not a plain membership test: {definition}"
    values = {v.replace("''", "'") for v in _LITERAL.findall(match.group(2))}
    return match.group(1), values


async def _enum_checks(url: str) -> dict[str, tuple[str, set[str]]]:
    conn = await asyncpg.connect(plain_dsn(url))
    try:
        rows = await conn.fetch(_CHECKS_SQL)
    finally:
        await conn.close()
    found = {r["name"]: _allowed(r["definition"]) for r in rows}
    return {name: allowed for name, allowed in found.items() if allowed is not None}


def _model_enum_checks() -> set[str]:
    names = set()
    for table in Base.metadata.tables.values():
        for constraint in table.constraints:
            if isinstance(constraint, CheckConstraint) and _LITERAL.search(str(constraint.sqltext)):
                names.add(str(constraint.name))
    return names


async def test_every_enum_check_in_the_database_allows_exactly_the_enums_values(
    database_url: str,
) -> None:
    in_database = await _enum_checks(database_url)
    # Every membership CHECK the migrations create is listed here, and each one is there.
    assert set(in_database) == set(ENUM_CHECKS)
    for name, (column, enum) in ENUM_CHECKS.items():
        assert in_database[name] == (column, {m.value for m in enum}), name


def test_every_enum_check_of_the_models_is_listed() -> None:
    """alembic check does not notice a CHECK in the models that no migration creates."""
    assert _model_enum_checks() == set(ENUM_CHECKS)


async def test_a_stale_check_passes_alembic_check_but_not_this_comparison(
    database_url: str,
) -> None:
    conn = await asyncpg.connect(plain_dsn(database_url))
    try:
        await conn.execute(
            "ALTER TABLE tasks DROP CONSTRAINT ck_tasks_status, ADD CONSTRAINT ck_tasks_status"
            " CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled'))"
        )
    finally:
        await conn.close()

    await asyncio.to_thread(migrations.check, database_url)  # alembic sees no drift
    column, allowed = (await _enum_checks(database_url))["ck_tasks_status"]
    assert column == "status"
    assert {m.value for m in TaskStatus} - allowed == {TaskStatus.AWAITING_APPROVAL.value}
