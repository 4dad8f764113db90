"""``change_tokens``: how far each watcher has reported changes made on the server.

One row per mailbox and stream (``scope:<folder>`` for a scope's flag changes and deletions,
``folders`` for the folder tree), holding the connector's opaque token and the epoch it is valid
in. A new table only: no existing row changes, and the way down drops it (the next upgrade
starts the change streams afresh, reporting changes from then on).

Revision ID: 0017_changes
Revises: 0015_leases
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailport.store.tables import UTCDateTime

revision = "0017_changes"
down_revision = "0016_thread_roots"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "change_tokens",
        sa.Column("mailbox_id", sa.String(40), nullable=False),
        sa.Column("stream", sa.String(520), nullable=False),
        sa.Column("epoch", sa.String(200), nullable=True),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name="fk_change_tokens_mailbox_id_mailboxes",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mailbox_id", "stream", name="pk_change_tokens"),
    )


def downgrade() -> None:
    op.drop_table("change_tokens")
