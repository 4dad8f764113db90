"""Push notifications: the channels providers push to, and the wake-ups they ask for.

* ``push_channels`` — one row per URL a provider was given (``/v1/push/<connector>/<id>``), with
  the secret each notification must present (encrypted, rotated by ``mailport keys rotate``).
* ``mailbox_wakeups`` — at most one row per mailbox: a notification asks the process that holds
  the mailbox's watcher to catch up now; that process deletes the row.

Both tables are new and start empty: no existing data changes.

Revision ID: 0012_push
Revises: 0008_oauth_resilience
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailport.store.tables import UTCDateTime

revision = "0012_push"
down_revision = "0011_connectors"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "push_channels",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("mailbox_id", sa.String(40), nullable=True),
        sa.Column("connector", sa.String(40), nullable=False),
        sa.Column("secret_enc", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_push_channels"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_push_channels_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["mailbox_id"], ["mailboxes.id"], name="fk_push_channels_mailbox_id_mailboxes", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_push_channels_tenant_id", "push_channels", ["tenant_id"])
    op.create_index("ix_push_channels_mailbox_id", "push_channels", ["mailbox_id"])
    op.create_table(
        "mailbox_wakeups",
        sa.Column("mailbox_id", sa.String(40), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("mailbox_id", name="pk_mailbox_wakeups"),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name="fk_mailbox_wakeups_mailbox_id_mailboxes",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("mailbox_wakeups")
    op.drop_index("ix_push_channels_mailbox_id", table_name="push_channels")
    op.drop_index("ix_push_channels_tenant_id", table_name="push_channels")
    op.drop_table("push_channels")
