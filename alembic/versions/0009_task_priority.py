"""Task priority

Revision ID: 0009_task_priority
Revises: 0008_webhook_circuit
Create Date: 2026-12-02 05:25:00.000000

``low``, ``normal`` (every task before this revision) or ``high``: where the task's job
goes in the task queue (``chatsys.infra.queue``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009_task_priority'
down_revision: str | None = '0008_webhook_circuit'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'tasks',
        sa.Column('priority', sa.String(length=16), server_default='normal', nullable=False),
    )


def downgrade() -> None:
    op.drop_column('tasks', 'priority')
