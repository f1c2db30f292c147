"""Task execution: leases and heartbeats, the per-task event counter, options, the outbox.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 04:46:03.799948
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('task_outbox',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('task_id', sa.UUID(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_task_outbox_task_id_tasks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_outbox'))
    )
    op.create_index('ix_task_outbox_pending', 'task_outbox', ['created_at'], unique=False, postgresql_where=sa.text('dispatched_at IS NULL'))
    op.add_column('steps', sa.Column('position', sa.Integer(), server_default='0', nullable=False))
    op.add_column('steps', sa.Column('model', sa.String(length=200), nullable=True))
    op.add_column('tasks', sa.Column('request_hash', sa.String(length=64), nullable=True))
    op.add_column('tasks', sa.Column('options', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False))
    op.add_column('tasks', sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False))
    op.add_column('tasks', sa.Column('last_seq', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('tasks', sa.Column('worker_id', sa.String(length=200), nullable=True))
    op.add_column('tasks', sa.Column('cancel_requested_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tasks', sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False))
    op.create_index('ix_tasks_running_heartbeat', 'tasks', ['heartbeat_at'], unique=False, postgresql_where=sa.text("status = 'running'"))


def downgrade() -> None:
    op.drop_index('ix_tasks_running_heartbeat', table_name='tasks', postgresql_where=sa.text("status = 'running'"))
    op.drop_column('tasks', 'updated_at')
    op.drop_column('tasks', 'cancel_requested_at')
    op.drop_column('tasks', 'worker_id')
    op.drop_column('tasks', 'last_seq')
    op.drop_column('tasks', 'metadata')
    op.drop_column('tasks', 'options')
    op.drop_column('tasks', 'request_hash')
    op.drop_column('steps', 'model')
    op.drop_column('steps', 'position')
    op.drop_index('ix_task_outbox_pending', table_name='task_outbox', postgresql_where=sa.text('dispatched_at IS NULL'))
    op.drop_table('task_outbox')
