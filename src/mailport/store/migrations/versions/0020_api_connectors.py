"""Mail API connectors (Gmail API, Microsoft Graph): the provider subscriptions behind push.

* ``provider_subscriptions`` — one row per mailbox and scope that the provider was asked to
  notify about (Gmail: the mailbox's ``users.watch``, scope ``""``; Graph: one subscription per
  watched folder), with the provider's id for it, its channel and when it expires, so a restart
  renews what exists instead of creating duplicates, and a renewal runs before expiry.
* ``push_channels.config`` — a channel's own settings as JSON (Gmail: the tenant's Pub/Sub topic).
* ``oauth_device_flows.connector`` — what the device sign-in is for (``imap``, ``gmail_api``,
  ``graph``), so that a flow completed by another process creates the mailbox it was started
  for; NULL on flows started before this revision (their connector is judged by the scopes).

New table and nullable columns: no existing data changes.

Revision ID: 0020_api_connectors
Revises: 0019_sending
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailport.store.tables import UTCDateTime

revision = "0020_api_connectors"
down_revision = "0019_sending"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("push_channels", sa.Column("config", sa.Text(), nullable=True))
    op.add_column("oauth_device_flows", sa.Column("connector", sa.String(40), nullable=True))
    op.create_table(
        "provider_subscriptions",
        sa.Column(
            "mailbox_id", sa.String(40), sa.ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("scope", sa.String(500), nullable=False),
        sa.Column("connector", sa.String(40), nullable=False),
        sa.Column("remote_id", sa.String(500), nullable=True),
        sa.Column("channel_id", sa.String(40), nullable=True),
        sa.Column("resource", sa.Text(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("state", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("mailbox_id", "scope", name="pk_provider_subscriptions"),
    )
    op.create_index("ix_provider_subscriptions_expires_at", "provider_subscriptions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_provider_subscriptions_expires_at", table_name="provider_subscriptions")
    op.drop_table("provider_subscriptions")
    with op.batch_alter_table("oauth_device_flows") as batch:
        batch.drop_column("connector")
    with op.batch_alter_table("push_channels") as batch:
        batch.drop_column("config")
