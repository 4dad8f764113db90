"""``thread_roots``: which conversation a thread key stands for, per mailbox.

A thread key (``thread_key`` of listings and ``message.received`` payloads) is a hash of the
conversation's root Message-ID and cannot be turned back into it; ``GET …/threads/{key}`` looks
the root up here. Rows are written when messages are ingested and when listings, searches and
threads are served; a new table, so the upgrade touches no existing row.

Revision ID: 0016_thread_roots
Revises: 0015_leases
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailport.store.tables import UTCDateTime

revision = "0016_thread_roots"
down_revision = "0015_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "thread_roots",
        sa.Column("mailbox_id", sa.String(40), nullable=False),
        sa.Column("thread_key", sa.String(32), nullable=False),
        sa.Column("root", sa.String(998), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name="fk_thread_roots_mailbox_id_mailboxes",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mailbox_id", "thread_key", name="pk_thread_roots"),
    )


def downgrade() -> None:
    op.drop_table("thread_roots")
