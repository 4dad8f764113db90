"""After-processing retries: ``pending_actions.next_attempt_at``.

An action the server refuses (a tagged NO: a folder that cannot be created, a quota) is retried
with backoff from ``next_attempt_at`` on, and marked ``failed`` after a bounded number of
attempts; NULL (every existing row) means "due now".

Revision ID: 0010_action_retries
Revises: 0005_retention
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailport.store.tables import UTCDateTime

revision = "0010_action_retries"
down_revision = "0009_email_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pending_actions", sa.Column("next_attempt_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pending_actions") as batch:
        batch.drop_column("next_attempt_at")
