"""Retention (the janitor): when a message's raw source expired, and the indexes its purge reads.

* ``messages.raw_purged_at`` — set when the janitor drops the raw source (the row stays: its
  sha256 and Message-ID recognise the message after a UIDVALIDITY change), so the API answers
  410 ``message_source_expired`` instead of 404 ``raw_not_stored`` (oversized: never stored).
* ``ix_messages_raw_created_at`` — partial (``raw IS NOT NULL``), covering: only the messages
  that still hold a source, so finding the expired ones never reads a 25 MB row.
* ``ix_events_accepted_at`` — the accepted events old enough to delete.

Revision ID: 0005_retention
Revises: 0004_delivery
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailport.store.tables import UTCDateTime

revision = "0005_retention"
down_revision = "0004_delivery"
branch_labels = None
depends_on = None

_HAS_RAW = sa.text("raw IS NOT NULL")


def upgrade() -> None:
    op.add_column("messages", sa.Column("raw_purged_at", UTCDateTime(), nullable=True))
    op.create_index(
        "ix_messages_raw_created_at",
        "messages",
        ["created_at", "id", "event_id"],
        sqlite_where=_HAS_RAW,
        postgresql_where=_HAS_RAW,
    )
    op.create_index("ix_events_accepted_at", "events", ["accepted_at"])


def downgrade() -> None:
    op.drop_index("ix_events_accepted_at", table_name="events")
    op.drop_index("ix_messages_raw_created_at", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("raw_purged_at")
