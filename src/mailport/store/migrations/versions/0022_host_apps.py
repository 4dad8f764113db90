"""Fitting into host applications (issue 19): POP3 mailboxes and the host app's own user tokens.

* ``mailboxes.pop3_host``, ``pop3_port``, ``pop3_security``, ``pop3_username`` and
  ``pop3_trusted_cert`` — the POP3 server of a mailbox read by the ``pop3`` connector.
* ``oauth_device_flows.owner`` — the user a device sign-in creates its mailbox for.
* ``tenant_jwt`` — how a tenant verifies its host application's JWTs (an HS256 secret, or
  RS256/ES256 keys from a JWKS URL; issuer, audience, leeway and claim mapping).

New tables and nullable columns: no existing data changes.

Revision ID: 0022_host_apps
Revises: 0021_contacts
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailport.store.tables import UTCDateTime

revision = "0022_host_apps"
down_revision = "0021_contacts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("mailboxes", sa.Column("pop3_host", sa.String(253), nullable=True))
    op.add_column("mailboxes", sa.Column("pop3_port", sa.Integer(), nullable=True))
    op.add_column("mailboxes", sa.Column("pop3_security", sa.String(10), nullable=True))
    op.add_column("mailboxes", sa.Column("pop3_username", sa.String(320), nullable=True))
    op.add_column("mailboxes", sa.Column("pop3_trusted_cert", sa.Text(), nullable=True))
    op.add_column("oauth_device_flows", sa.Column("owner", sa.String(200), nullable=True))
    op.create_table(
        "tenant_jwt",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column(
            "tenant_id", sa.String(40), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("secret_enc", sa.Text(), nullable=True),
        sa.Column("jwks_url", sa.String(2000), nullable=True),
        sa.Column("algorithms", sa.Text(), nullable=False),
        sa.Column("issuer", sa.String(500), nullable=True),
        sa.Column("audience", sa.String(500), nullable=True),
        sa.Column("leeway_seconds", sa.Integer(), nullable=False, server_default="30"),
        sa.Column("owner_claim", sa.String(100), nullable=False, server_default="sub"),
        sa.Column("tenant_claim", sa.String(100), nullable=True),
        sa.Column("tenant_value", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", name="uq_tenant_jwt_tenant"),
    )
    op.create_index("ix_tenant_jwt_issuer", "tenant_jwt", ["issuer"])


def downgrade() -> None:
    op.drop_index("ix_tenant_jwt_issuer", table_name="tenant_jwt")
    op.drop_table("tenant_jwt")
    op.drop_column("oauth_device_flows", "owner")
    # not batch: a rebuilt table would cascade to its children
    for column in ("pop3_trusted_cert", "pop3_username", "pop3_security", "pop3_port", "pop3_host"):
        op.drop_column("mailboxes", column)
