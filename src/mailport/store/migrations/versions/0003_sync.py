"""Ingestion: cursors, the event log, messages, pending actions, statistics, leases.

Revision ID: 0003_sync
Revises: 0002_oauth
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailport.store.tables import SeqInteger, UTCDateTime

revision = "0003_sync"
down_revision = "0002_oauth"
branch_labels = None
depends_on = None


def _mailbox_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["mailbox_id"], ["mailboxes.id"], name=f"fk_{table}_mailbox_id_mailboxes", ondelete="CASCADE"
    )


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "mailbox_cursors",
        sa.Column("mailbox_id", sa.String(40), nullable=False),
        sa.Column("folder", sa.String(500), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("highestmodseq", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("mailbox_id", "folder", name="pk_mailbox_cursors"),
        _mailbox_fk("mailbox_cursors"),
    )
    op.create_table(
        "events",
        sa.Column("seq", SeqInteger, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("mailbox_id", sa.String(40), nullable=True),
        sa.Column("type", sa.String(60), nullable=False),
        sa.Column("idempotency_key", sa.String(600), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("accepted_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
        _tenant_fk("events"),
        sa.UniqueConstraint("id", name="uq_events_id"),
        sa.UniqueConstraint("idempotency_key", name="uq_events_idempotency_key"),
    )
    op.create_index("ix_events_tenant_seq", "events", ["tenant_id", "seq"])
    op.create_index("ix_events_mailbox_seq", "events", ["mailbox_id", "seq"])
    op.create_table(
        "messages",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("mailbox_id", sa.String(40), nullable=False),
        sa.Column("folder", sa.String(500), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("message_id_header", sa.String(998), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("oversized", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("event_id", sa.String(40), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        _tenant_fk("messages"),
        _mailbox_fk("messages"),
        sa.UniqueConstraint("mailbox_id", "folder", "uidvalidity", "uid", name="uq_messages_location"),
    )
    op.create_index("ix_messages_mailbox_sha256", "messages", ["mailbox_id", "sha256"])
    op.create_table(
        "pending_actions",
        sa.Column("id", SeqInteger, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("mailbox_id", sa.String(40), nullable=False),
        sa.Column("folder", sa.String(500), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(520), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pending_actions"),
        _mailbox_fk("pending_actions"),
    )
    op.create_index("ix_pending_actions_mailbox_state", "pending_actions", ["mailbox_id", "state"])
    op.create_index("ix_pending_actions_event_id", "pending_actions", ["event_id"])
    op.create_table(
        "mailbox_stats",
        sa.Column("mailbox_id", sa.String(40), nullable=False),
        sa.Column("hour", UTCDateTime(), nullable=False),
        sa.Column("processed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("errors", sa.Integer(), server_default="0", nullable=False),
        sa.Column("processing_ms", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("mailbox_id", "hour", name="pk_mailbox_stats"),
        _mailbox_fk("mailbox_stats"),
    )
    op.create_table(
        "watcher_leases",
        sa.Column("mailbox_id", sa.String(40), nullable=False),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("last_connected_at", UTCDateTime(), nullable=True),
        sa.Column("queue_size", sa.Integer(), server_default="0", nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("mailbox_id", name="pk_watcher_leases"),
        _mailbox_fk("watcher_leases"),
    )


def downgrade() -> None:
    op.drop_table("watcher_leases")
    op.drop_table("mailbox_stats")
    op.drop_index("ix_pending_actions_event_id", table_name="pending_actions")
    op.drop_index("ix_pending_actions_mailbox_state", table_name="pending_actions")
    op.drop_table("pending_actions")
    op.drop_index("ix_messages_mailbox_sha256", table_name="messages")
    op.drop_table("messages")
    op.drop_index("ix_events_mailbox_seq", table_name="events")
    op.drop_index("ix_events_tenant_seq", table_name="events")
    op.drop_table("events")
    op.drop_table("mailbox_cursors")
