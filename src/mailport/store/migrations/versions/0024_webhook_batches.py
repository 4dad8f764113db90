"""Batched webhook deliveries (issue 21): ``webhook_endpoints.batch_size``.

An endpoint with ``batch_size`` > 1 receives up to that many consecutive events of one mailbox
in one request (docs/webhooks.md, "Batched delivery"); 1, the default of every existing
endpoint, is one event per request exactly as before.

A new column with a server default: no existing data changes.

Revision ID: 0024_webhook_batches
Revises: 0023_fleet
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024_webhook_batches"
down_revision = "0023_fleet"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "webhook_endpoints", sa.Column("batch_size", sa.Integer(), nullable=False, server_default="1")
    )


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.drop_column("batch_size")
