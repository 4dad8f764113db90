"""Server settings are optional: ``mailboxes.imap_host``, ``imap_port`` and ``imap_security``
may be NULL, for mailboxes whose connector reaches the mail without IMAP.

Every existing mailbox keeps its IMAP settings: only the constraint changes (SQLite rebuilds
the table in batch mode; PostgreSQL drops ``NOT NULL``). The downgrade restores ``NOT NULL`` and
refuses while a mailbox has no IMAP settings, rather than invent a server for it.

Revision ID: 0013_optional_servers
Revises: 0008_oauth_resilience
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_optional_servers"
down_revision = "0008_oauth_resilience"
branch_labels = None
depends_on = None

_COLUMNS = (("imap_host", sa.String(253)), ("imap_port", sa.Integer()), ("imap_security", sa.String(10)))


def upgrade() -> None:
    with op.batch_alter_table("mailboxes") as batch:
        for name, type_ in _COLUMNS:
            batch.alter_column(name, existing_type=type_, nullable=True)


def downgrade() -> None:
    without = (
        op.get_bind().execute(sa.text("SELECT count(*) FROM mailboxes WHERE imap_host IS NULL")).scalar()
    )
    if without:
        raise RuntimeError(
            f"{without} mailbox(es) have no IMAP settings; delete them (or give them IMAP settings) "
            "before downgrading below 0013_optional_servers"
        )
    with op.batch_alter_table("mailboxes") as batch:
        for name, type_ in _COLUMNS:
            batch.alter_column(name, existing_type=type_, nullable=False)
