"""OAuth: refresh lease on mailboxes, consumed states, tenant OAuth apps, device flows.

Revision ID: 0002_oauth
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailport.store.tables import UTCDateTime

revision = "0002_oauth"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mailboxes") as batch:
        batch.add_column(sa.Column("oauth_refresh_lease_until", UTCDateTime(), nullable=True))
    op.create_table(
        "oauth_states",
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name="pk_oauth_states"),
    )
    op.create_index("ix_oauth_states_expires_at", "oauth_states", ["expires_at"])
    op.create_table(
        "oauth_apps",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("provider", sa.String(50), nullable=False),
        sa.Column("client_id", sa.String(500), nullable=False),
        sa.Column("client_secret_enc", sa.Text(), nullable=True),
        sa.Column("directory_tenant", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_oauth_apps"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_oauth_apps_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("tenant_id", "provider", name="uq_oauth_apps_tenant_provider"),
    )
    op.create_table(
        "oauth_device_flows",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("provider", sa.String(50), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("purpose", sa.String(100), nullable=True),
        sa.Column("device_code_enc", sa.Text(), nullable=True),
        sa.Column("user_code", sa.String(100), nullable=False),
        sa.Column("verification_uri", sa.String(2000), nullable=False),
        sa.Column("verification_uri_complete", sa.String(2000), nullable=True),
        sa.Column("interval", sa.Integer(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("mailbox_id", sa.String(40), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("poll_lease_until", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_oauth_device_flows"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_oauth_device_flows_tenant_id_tenants",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_oauth_device_flows_tenant_id", "oauth_device_flows", ["tenant_id"])


def downgrade() -> None:
    op.drop_index("ix_oauth_device_flows_tenant_id", table_name="oauth_device_flows")
    op.drop_table("oauth_device_flows")
    op.drop_table("oauth_apps")
    op.drop_index("ix_oauth_states_expires_at", table_name="oauth_states")
    op.drop_table("oauth_states")
    with op.batch_alter_table("mailboxes") as batch:
        batch.drop_column("oauth_refresh_lease_until")
