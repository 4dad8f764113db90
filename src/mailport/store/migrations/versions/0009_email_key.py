"""One mailbox per address and tenant, whatever the case: ``mailboxes.email_key``.

``dup@example.com`` and ``DUP@EXAMPLE.COM`` were two mailboxes (the unique constraint compared
the stored text), so two watchers delivered every message twice. ``email_key`` holds the
address as compared (:func:`mailport.validation.email_key`: the domain in its ASCII form, the
local part lower-cased) under a unique index on ``(tenant_id, email_key)``.

Existing duplicates are not deleted: per tenant and key the oldest mailbox (``created_at``,
then id) keeps the key; each later one is **disabled** (its watcher stops), keeps its data and
gets ``email_key`` NULL (a unique index admits any number of NULLs) and a ``last_error`` naming
the mailbox it duplicates. Enabling it again is refused with 409 ``conflict`` while the other
exists; delete one of the two. The downgrade drops the column and index (disabled mailboxes
stay disabled).

Revision ID: 0009_email_key
Revises: 0005_retention
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailport.validation import email_key

revision = "0009_email_key"
down_revision = "0006_trusted_certificates"
branch_labels = None
depends_on = None

DUPLICATE_NOTE = (
    "disabled: the same address as mailbox {keeper} (addresses are compared regardless of case); "
    "delete one of the two"
)


def upgrade() -> None:
    op.add_column("mailboxes", sa.Column("email_key", sa.String(320), nullable=True))
    mailboxes = sa.table(
        "mailboxes",
        sa.column("id", sa.String),
        sa.column("tenant_id", sa.String),
        sa.column("email", sa.String),
        sa.column("email_key", sa.String),
        sa.column("status", sa.String),
        sa.column("last_error", sa.Text),
        sa.column("created_at", sa.DateTime),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(mailboxes.c.id, mailboxes.c.tenant_id, mailboxes.c.email).order_by(
            mailboxes.c.tenant_id, mailboxes.c.created_at, mailboxes.c.id
        )
    ).all()
    keepers: dict[tuple[str, str], str] = {}
    for row in rows:
        key = email_key(row.email)
        keeper = keepers.setdefault((row.tenant_id, key), row.id)
        values: dict[str, str | None]
        if keeper == row.id:
            values = {"email_key": key}
        else:
            values = {
                "email_key": None,
                "status": "disabled",
                "last_error": DUPLICATE_NOTE.format(keeper=keeper),
            }
        conn.execute(sa.update(mailboxes).where(mailboxes.c.id == row.id).values(**values))
    op.create_index("uq_mailboxes_tenant_email_key", "mailboxes", ["tenant_id", "email_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_mailboxes_tenant_email_key", table_name="mailboxes")
    with op.batch_alter_table("mailboxes") as batch:
        batch.drop_column("email_key")
