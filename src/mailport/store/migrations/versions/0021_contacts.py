"""Contacts harvested from mail (issue 18), and mailbox owners.

* ``mailboxes.owner`` — the host application's user who owns the mailbox (NULL: the tenant);
  contacts of owned mailboxes belong to that owner.
* ``mailboxes.contacts`` — the mailbox's harvest settings, JSON (NULL: never switched on).
* ``contacts``, ``contact_addresses``, ``contact_stats``, ``contact_exclusions``,
  ``contact_tombstones``, ``contact_messages``, ``contact_groups``, ``contact_group_members``,
  ``contact_blocklist``, ``contact_sync`` and ``contact_feed``: see
  :mod:`mailport.store.tables` and :mod:`mailport.contacts`.

New tables and nullable columns: no existing data changes.

Revision ID: 0021_contacts
Revises: 0020_api_connectors
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailport.store.tables import SeqInteger, UTCDateTime

revision = "0021_contacts"
down_revision = "0020_api_connectors"
branch_labels = None
depends_on = None


def _book(tenant_fk: bool = False) -> list[sa.Column]:  # type: ignore[type-arg]
    tenant = (
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False)
        if tenant_fk
        else sa.Column("tenant_id", sa.String(40), nullable=False)
    )
    return [tenant, sa.Column("owner", sa.String(200), nullable=False)]


def _mailbox() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "mailbox_id", sa.String(40), sa.ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.add_column("mailboxes", sa.Column("contacts", sa.Text(), nullable=True))
    op.add_column("mailboxes", sa.Column("owner", sa.String(200), nullable=True))
    op.create_index("ix_mailboxes_tenant_owner", "mailboxes", ["tenant_id", "owner"])
    op.create_table(
        "contacts",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column(
            "tenant_id", sa.String(40), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("owner", sa.String(200), nullable=False, server_default=""),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("name_source", sa.String(10), nullable=False, server_default="harvest"),
        sa.Column("names", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("addresses", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("organisation", sa.String(253), nullable=True),
        sa.Column("organisation_source", sa.String(10), nullable=False, server_default="harvest"),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("first_seen", UTCDateTime(), nullable=True),
        sa.Column("last_seen", UTCDateTime(), nullable=True),
        sa.Column("sent_to", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("received_from", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("copied", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("two_way", sa.Boolean(), nullable=False, server_default="0"),
        sa.Column("rank", sa.Float(), nullable=False, server_default="0"),
        sa.Column("search", sa.Text(), nullable=False, server_default=""),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("announced", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_contacts"),
    )
    op.create_index("ix_contacts_book_rank", "contacts", ["tenant_id", "owner", "rank"])
    op.create_index("ix_contacts_book_organisation", "contacts", ["tenant_id", "owner", "organisation"])
    op.create_table(
        "contact_addresses",
        *_book(tenant_fk=True),
        sa.Column("key", sa.String(320), nullable=False),
        sa.Column(
            "contact_id", sa.String(40), sa.ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False
        ),
        sa.PrimaryKeyConstraint("tenant_id", "owner", "key", name="pk_contact_addresses"),
    )
    op.create_index("ix_contact_addresses_contact_id", "contact_addresses", ["contact_id"])
    op.create_table(
        "contact_stats",
        _mailbox(),
        sa.Column("key", sa.String(320), nullable=False),
        *_book(),
        sa.Column("sent_to", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("received_from", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("copied", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("mailbox_id", "key", name="pk_contact_stats"),
    )
    op.create_index("ix_contact_stats_book_key", "contact_stats", ["tenant_id", "owner", "key"])
    op.create_table(
        "contact_exclusions",
        _mailbox(),
        sa.Column("key", sa.String(320), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        *_book(),
        sa.Column("messages", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("mailbox_id", "key", "reason", name="pk_contact_exclusions"),
    )
    op.create_index("ix_contact_exclusions_book_key", "contact_exclusions", ["tenant_id", "owner", "key"])
    op.create_table(
        "contact_tombstones",
        *_book(tenant_fk=True),
        sa.Column("key", sa.String(320), nullable=False),
        sa.Column("contact_id", sa.String(40), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "owner", "key", name="pk_contact_tombstones"),
    )
    op.create_table(
        "contact_messages",
        _mailbox(),
        sa.Column("digest", sa.String(32), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("mailbox_id", "digest", name="pk_contact_messages"),
    )
    op.create_table(
        "contact_groups",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column(
            "tenant_id", sa.String(40), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("owner", sa.String(200), nullable=False, server_default=""),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("rule", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_contact_groups"),
        sa.UniqueConstraint("tenant_id", "owner", "name", name="uq_contact_groups_book_name"),
    )
    op.create_index("ix_contact_groups_book_kind", "contact_groups", ["tenant_id", "owner", "kind"])
    op.create_table(
        "contact_group_members",
        sa.Column(
            "group_id", sa.String(40), sa.ForeignKey("contact_groups.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "contact_id", sa.String(40), sa.ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "contact_id", name="pk_contact_group_members"),
    )
    op.create_index("ix_contact_group_members_contact_id", "contact_group_members", ["contact_id"])
    op.create_table(
        "contact_blocklist",
        sa.Column(
            "tenant_id", sa.String(40), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("value", sa.String(320), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "kind", "value", name="pk_contact_blocklist"),
    )
    op.create_table(
        "contact_sync",
        sa.Column(
            "mailbox_id", sa.String(40), sa.ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("since", UTCDateTime(), nullable=False),
        sa.Column("folders", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("next_at", UTCDateTime(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("messages", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(80), nullable=True),
        sa.Column("claim_until", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("mailbox_id", name="pk_contact_sync"),
    )
    op.create_index("ix_contact_sync_next_at", "contact_sync", ["next_at"])
    op.create_table(
        "contact_feed",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("seq", SeqInteger, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_contact_feed"),
    )


def downgrade() -> None:
    for table in (
        "contact_feed",
        "contact_sync",
        "contact_blocklist",
        "contact_group_members",
        "contact_groups",
        "contact_messages",
        "contact_tombstones",
        "contact_exclusions",
        "contact_stats",
        "contact_addresses",
        "contacts",
    ):
        op.drop_table(table)
    op.drop_index("ix_mailboxes_tenant_owner", table_name="mailboxes")
    op.drop_column("mailboxes", "owner")  # not batch: a rebuilt table would cascade to its children
    op.drop_column("mailboxes", "contacts")
