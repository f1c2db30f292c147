"""Idempotency keys of every creating POST but task submission (which keeps its own)

Revision ID: 0007_idempotency_keys
Revises: 0006_step_cancelled
Create Date: 2026-12-02 02:20:00.000000

One row per (owner, operation, key): the hash of the request first made with the key
and its answer (json, not jsonb: a replay keeps the first answer's key order), written
in the transaction of what the request made. Its primary key is what makes a concurrent
request with the same key wait and then replay. A record older than 24 h is taken over
by the next request with its key.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0007_idempotency_keys'
down_revision: str | None = '0006_step_cancelled'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('idempotency_keys',
    sa.Column('owner', sa.String(length=200), nullable=False),
    sa.Column('operation', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('answer', postgresql.JSON(astext_type=sa.Text()), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('owner', 'operation', 'key', name=op.f('pk_idempotency_keys'))
    )


def downgrade() -> None:
    op.drop_table('idempotency_keys')
