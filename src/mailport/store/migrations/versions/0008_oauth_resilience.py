"""OAuth resilience: when each mailbox's access token was issued.

* ``mailboxes.oauth_issued_at`` — with ``oauth_expires_at`` it gives the token's lifetime, which
  bounds the refresh-ahead window to half of it (a 300 s token was refreshed on every use).
  Tokens stored before this revision have none: they are refreshed by the configured window
  once, and the refreshed token records it.

Mailboxes left in ``reauth_required`` by a temporary failure need no data change: the token
manager now tries one refresh for a marked mailbox and lifts the mark when it succeeds.

Revision ID: 0008_oauth_resilience
Revises: 0007_acceptance
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailport.store.tables import UTCDateTime

revision = "0008_oauth_resilience"
down_revision = "0007_acceptance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("mailboxes", sa.Column("oauth_issued_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mailboxes") as batch:
        batch.drop_column("oauth_issued_at")
