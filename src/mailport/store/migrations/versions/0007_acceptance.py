"""Acceptance per consumer: named pull consumers with an acknowledged cursor.

* ``pull_consumers`` — one row per pull consumer (tenant, name, scope: "" for every mailbox or
  one mailbox id) with ``acked_seq``, the cursor through which it acknowledged its events (see
  :mod:`mailport.events.acceptance`).

Existing data keeps its meaning without a re-delivery: accepted events stay accepted (their
``accepted_at`` is untouched), webhook deliveries and the fan-out cursor are not changed, so no
endpoint receives anything twice, and nothing becomes accepted without a consumer having taken
it. Events that no webhook endpoint owes and that were never accepted (those appended before a
tenant's first webhook, which nobody could accept before) become *unclaimed*: they leave the
waiting count and are accepted as soon as a pull consumer acknowledges them (the application's
next ``GET /v1/events?after=<cursor>`` does) or an endpoint backfills them.

Revision ID: 0007_acceptance
Revises: 0009_email_key
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailport.store.tables import UTCDateTime

revision = "0007_acceptance"
down_revision = "0010_action_retries"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pull_consumers",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("mailbox_id", sa.String(40), nullable=False),
        sa.Column("acked_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "name", "mailbox_id", name="pk_pull_consumers"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_pull_consumers_tenant_id_tenants", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("pull_consumers")
