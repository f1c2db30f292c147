"""Steps may end cancelled: the steps status CHECK allows 'cancelled'

Revision ID: 0006_step_cancelled
Revises: 0005_approvals
Create Date: 2026-12-02 01:52:24.272230

A cancelled task's unfinished steps (pending, running) end 'cancelled'. Downgrading
turns those steps into 'skipped' (the old vocabulary's word for a step that did not
run to its end, neither succeeded nor failed) before it narrows the CHECK again.
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0006_step_cancelled'
down_revision: str | None = '0005_approvals'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = "status IN ('pending', 'running', 'succeeded', 'failed', 'skipped')"
_AFTER = "status IN ('pending', 'running', 'succeeded', 'failed', 'skipped', 'cancelled')"


def upgrade() -> None:
    op.drop_constraint(op.f('ck_steps_status'), 'steps', type_='check')
    op.create_check_constraint(op.f('ck_steps_status'), 'steps', _AFTER)


def downgrade() -> None:
    op.execute("UPDATE steps SET status = 'skipped' WHERE status = 'cancelled'")
    op.drop_constraint(op.f('ck_steps_status'), 'steps', type_='check')
    op.create_check_constraint(op.f('ck_steps_status'), 'steps', _BEFORE)
