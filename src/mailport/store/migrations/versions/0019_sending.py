"""Sending: the durable outbound queue ``outbound_messages`` and ``mailboxes.sending`` (JSON
settings: Sent copy, aliases, rate limits; NULL means the defaults).

Revision ID: 0019_sending
Revises: 0018_watch_folders
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailport.store.tables import UTCDateTime

revision = "0019_sending"
down_revision = "0018_watch_folders"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("mailboxes", sa.Column("sending", sa.Text(), nullable=True))
    op.create_table(
        "outbound_messages",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "tenant_id", sa.String(40), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "mailbox_id", sa.String(40), sa.ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("idempotency_key", sa.String(300), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=True),
        sa.Column("message_id", sa.String(998), nullable=False),
        sa.Column("message_id_key", sa.String(998), nullable=False),
        sa.Column("in_reply_to", sa.String(998), nullable=True),
        sa.Column("sender", sa.String(320), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("eight_bit", sa.Boolean(), nullable=False, server_default="0"),
        sa.Column("smtputf8", sa.Boolean(), nullable=False, server_default="0"),
        sa.Column("send_at", UTCDateTime(), nullable=True),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("smtp_reply", sa.Text(), nullable=True),
        sa.Column("confirmed", sa.Boolean(), nullable=False, server_default="1"),
        sa.Column("refused", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(80), nullable=True),
        sa.Column("claim_until", UTCDateTime(), nullable=True),
        sa.Column("sent_copy", sa.String(20), nullable=False),
        sa.Column("sent_copy_ref", sa.String(1000), nullable=True),
        sa.Column("sent_copy_attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("draft_ref", sa.String(1000), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("mailbox_id", "idempotency_key", name="uq_outbound_idempotency"),
    )
    op.create_index("ix_outbound_due", "outbound_messages", ["state", "next_attempt_at"])
    op.create_index("ix_outbound_mailbox_created", "outbound_messages", ["mailbox_id", "created_at"])
    op.create_index("ix_outbound_tenant_message_id", "outbound_messages", ["tenant_id", "message_id_key"])


def downgrade() -> None:
    op.drop_table("outbound_messages")
    op.drop_column("mailboxes", "sending")
