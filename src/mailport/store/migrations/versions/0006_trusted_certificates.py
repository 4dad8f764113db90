"""Trusted (pinned) certificates: one per server of a mailbox, like a mail client's exception.

* ``mailboxes.imap_trusted_cert`` / ``mailboxes.smtp_trusted_cert`` — the server's leaf
  certificate as PEM (a few hundred bytes to ~2 KiB). When set, that server must present exactly
  this certificate (see :mod:`mailport.net.trust`); NULL (every existing mailbox): the CAs.

Revision ID: 0006_trusted_certificates
Revises: 0005_retention
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_trusted_certificates"
down_revision = "0005_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mailboxes") as batch:
        batch.add_column(sa.Column("imap_trusted_cert", sa.Text(), nullable=True))
        batch.add_column(sa.Column("smtp_trusted_cert", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mailboxes") as batch:
        batch.drop_column("smtp_trusted_cert")
        batch.drop_column("imap_trusted_cert")
