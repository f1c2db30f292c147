"""Webhook deliveries name their receiver; workers pull them from Postgres

Revision ID: 0011_webhook_receivers
Revises: 0010_key_default_priority
Create Date: 2026-12-03 09:00:00.000000

``receiver``: the registered endpoint (``endpoint:<id>``) or, for a task's own
``webhook_url``, the URL's origin (``origin:<scheme>://<host[:port]>``), the unit of
the per-receiver in-flight limit that the claim of due deliveries applies
(``chatsys.infra.db.webhook_repository``). ``dispatched_at`` goes: no job is sent per
attempt any more, so there is nothing to re-send.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011_webhook_receivers'
down_revision: str | None = '0010_key_default_priority'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The origin of a URL as chatsys.domain.webhooks.fairness.receiver_of spells it: the
# scheme and the host (with its port), without user info, lower-cased.
_ORIGIN = r"lower(regexp_replace(url, '^([^:/?#]+)://(?:[^@/?#]*@)?([^/?#]*).*$', '\1://\2'))"


def upgrade() -> None:
    op.add_column('webhook_deliveries', sa.Column('receiver', sa.String(length=2100)))
    op.execute(
        "UPDATE webhook_deliveries SET receiver = CASE WHEN endpoint_id IS NOT NULL "
        f"THEN 'endpoint:' || endpoint_id::text ELSE 'origin:' || {_ORIGIN} END"
    )
    op.alter_column('webhook_deliveries', 'receiver', nullable=False)
    # The claim reads each receiver's due deliveries in turn.
    op.drop_index('ix_webhook_deliveries_due', table_name='webhook_deliveries')
    op.create_index(
        'ix_webhook_deliveries_due',
        'webhook_deliveries',
        ['receiver', 'next_attempt_at'],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        'ix_webhook_deliveries_in_flight',
        'webhook_deliveries',
        ['receiver'],
        postgresql_where=sa.text("status = 'delivering'"),
    )
    op.drop_column('webhook_deliveries', 'dispatched_at')


def downgrade() -> None:
    op.add_column(
        'webhook_deliveries',
        sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.drop_index('ix_webhook_deliveries_in_flight', table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_due', table_name='webhook_deliveries')
    op.drop_column('webhook_deliveries', 'receiver')
    op.create_index(
        'ix_webhook_deliveries_due',
        'webhook_deliveries',
        ['next_attempt_at'],
        postgresql_where=sa.text("status = 'pending'"),
    )
