"""API keys' default task priority

Revision ID: 0010_key_default_priority
Revises: 0009_task_priority
Create Date: 2026-12-02 16:40:00.000000

``low``, ``normal`` (every key before this revision) or ``high``: the priority of the
tasks a key submits without one (``chatsys.domain.access``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010_key_default_priority'
down_revision: str | None = '0009_task_priority'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'api_keys',
        sa.Column(
            'default_priority', sa.String(length=16), server_default='normal', nullable=False
        ),
    )
    op.create_check_constraint(
        op.f('ck_api_keys_default_priority'),
        'api_keys',
        "default_priority IN ('low', 'normal', 'high')",
    )


def downgrade() -> None:
    op.drop_constraint(op.f('ck_api_keys_default_priority'), 'api_keys', type_='check')
    op.drop_column('api_keys', 'default_priority')
