"""A circuit breaker per webhook endpoint

Revision ID: 0008_webhook_circuit
Revises: 0007_idempotency_keys
Create Date: 2026-12-02 05:20:00.000000

``consecutive_failures`` counts the endpoint's failed attempts since its last success;
``paused_until`` (set once it reaches the threshold) is when its next probe may go.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008_webhook_circuit'
down_revision: str | None = '0007_idempotency_keys'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'webhook_endpoints',
        sa.Column('consecutive_failures', sa.Integer(), server_default='0', nullable=False),
    )
    op.add_column(
        'webhook_endpoints', sa.Column('paused_until', sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column('webhook_endpoints', 'paused_until')
    op.drop_column('webhook_endpoints', 'consecutive_failures')
