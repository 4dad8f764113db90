"""Mailboxes may watch several folders: ``mailboxes.folders``.

A JSON list (``[{"folder": "INBOX", "added_at": null}, {"folder": "role:sent", "added_at":
"…"}]``) rather than a child table: it is read with the mailbox and written whole, like every
other setting, and the orchestrator's change detector reads it as one column. NULL means what
every mailbox did before: watch ``folder`` alone, so existing rows need no data change. The way
down drops the column (``folder``, the first watched folder, stays).

Revision ID: 0018_watch_folders
Revises: 0015_leases
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_watch_folders"
down_revision = "0017_changes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("mailboxes", sa.Column("folders", sa.Text(), nullable=True))


def downgrade() -> None:
    # SQLite drops a column in place (3.35+); batch mode would rebuild the table, and dropping
    # the old one would cascade to every row that refers to a mailbox.
    op.drop_column("mailboxes", "folders")
