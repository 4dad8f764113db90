"""A connector per mailbox, and storage keyed on the connector's opaque strings.

* ``mailboxes.connector`` — the registry key of the mailbox's connector; every existing
  mailbox is ``imap`` (the server default).
* ``mailbox_cursors``, ``messages`` and ``pending_actions`` are keyed on strings
  ``(scope, epoch, item)`` (cursors: ``(scope, epoch, position)``) instead of IMAP's integers
  ``(folder, uidvalidity, uid)``: a Gmail history id or a Graph delta link fits them too.
  Existing rows become ``scope = folder``, ``epoch = str(uidvalidity)``, ``item = str(uid)``
  and ``position = str(last_uid)``, which is exactly what the IMAP connector writes, so
  ingestion continues where it stopped; the events' idempotency keys
  (``msg:<mailbox>:<uidvalidity>:<uid>``) are built from the same strings, so a message
  ingested before the upgrade is never delivered again.
* ``mailbox_cursors.highestmodseq`` is dropped: it was written and never read.

The cursor table is small (a row per watched folder) and is rebuilt through Python; the
messages table, which holds the raw sources, is converted in SQL.

Revision ID: 0011_connectors
Revises: 0008_oauth_resilience
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailport.store.tables import UTCDateTime

revision = "0011_connectors"
down_revision = "0008_oauth_resilience"
branch_labels = None
depends_on = None

_HAS_RAW = sa.text("raw IS NOT NULL")
_OLD = ("folder", "uidvalidity", "uid")
_NEW = ("scope", "epoch", "item")


def _new_columns() -> list[sa.Column[str]]:
    return [
        sa.Column("scope", sa.String(500), nullable=True),
        sa.Column("epoch", sa.String(200), nullable=True),
        sa.Column("item", sa.String(500), nullable=True),
    ]


def _old_columns() -> list[sa.Column[str | int]]:
    return [
        sa.Column("folder", sa.String(500), nullable=True),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("uid", sa.BigInteger(), nullable=True),
    ]


def _rekey(table: str, *, to_strings: bool) -> None:
    """Fill the new location columns of ``table`` from the old ones (strings <-> integers)."""
    names, sources = (_NEW, _OLD) if to_strings else (_OLD, _NEW)
    kind = sa.String() if to_strings else sa.BigInteger()
    rows = sa.table(
        table,
        sa.column("folder", sa.String),
        sa.column("uidvalidity", sa.BigInteger),
        sa.column("uid", sa.BigInteger),
        sa.column("scope", sa.String),
        sa.column("epoch", sa.String),
        sa.column("item", sa.String),
    )
    op.execute(
        sa.update(rows).values(
            {
                names[0]: rows.c[sources[0]],
                names[1]: sa.cast(rows.c[sources[1]], kind),
                names[2]: sa.cast(rows.c[sources[2]], kind),
            }
        )
    )


def _swap(table: str, *, to_strings: bool, unique: str | None) -> None:
    """Add the new location columns, fill them, drop the old ones (and rebuild ``unique``)."""
    added, dropped = (_new_columns(), _OLD) if to_strings else (_old_columns(), _NEW)
    with op.batch_alter_table(table) as batch:
        for column in added:
            batch.add_column(column)
    _rekey(table, to_strings=to_strings)
    with op.batch_alter_table(table) as batch:
        if unique is not None:
            batch.drop_constraint(unique, type_="unique")
        for name in dropped:
            batch.drop_column(name)
        for column in added:
            batch.alter_column(column.name, existing_type=column.type, nullable=False)
        if unique is not None:
            batch.create_unique_constraint(unique, ["mailbox_id", *(c.name for c in added)])


def _cursor_rows(*location: str) -> sa.TableClause:
    """``mailbox_cursors`` for reading (typed, so that SQLite's timestamps come back as such)."""
    return sa.table(
        "mailbox_cursors",
        sa.column("mailbox_id", sa.String()),
        *(sa.column(name, sa.String()) for name in location),
        sa.column("updated_at", UTCDateTime()),
    )


def _cursors(columns: list[sa.Column[object]], rows: list[dict[str, object]]) -> None:
    """Recreate ``mailbox_cursors`` (its primary key changes) with ``columns`` and ``rows``."""
    op.drop_table("mailbox_cursors")
    table = op.create_table(
        "mailbox_cursors",
        sa.Column("mailbox_id", sa.String(40), nullable=False),
        *columns,
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("mailbox_id", columns[0].name, name="pk_mailbox_cursors"),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name="fk_mailbox_cursors_mailbox_id_mailboxes",
            ondelete="CASCADE",
        ),
    )
    if rows:
        op.bulk_insert(table, rows)


def _locations(*, to_strings: bool) -> None:
    """Convert ``messages`` and ``pending_actions`` (the partial index, which a SQLite batch
    would not copy faithfully, is dropped and made again as 0005 made it)."""
    op.drop_index("ix_messages_raw_created_at", table_name="messages")
    _swap("messages", to_strings=to_strings, unique="uq_messages_location")
    op.create_index(
        "ix_messages_raw_created_at",
        "messages",
        ["created_at", "id", "event_id"],
        sqlite_where=_HAS_RAW,
        postgresql_where=_HAS_RAW,
    )
    _swap("pending_actions", to_strings=to_strings, unique=None)


def upgrade() -> None:
    op.add_column("mailboxes", sa.Column("connector", sa.String(40), nullable=False, server_default="imap"))
    old = op.get_bind().execute(sa.select(_cursor_rows("folder", "uidvalidity", "last_uid")))
    cursors = [
        {
            "mailbox_id": r.mailbox_id,
            "scope": r.folder,
            "epoch": str(r.uidvalidity),
            "position": str(r.last_uid),
            "updated_at": r.updated_at,
        }
        for r in old
    ]
    _cursors(
        [
            sa.Column("scope", sa.String(500), nullable=False),
            sa.Column("epoch", sa.String(200), nullable=False),
            sa.Column("position", sa.Text(), nullable=False),
        ],
        cursors,
    )
    _locations(to_strings=True)


def downgrade() -> None:
    """Back to integers; rows of a connector whose ids are not numbers cannot be kept."""
    conn = op.get_bind()
    others = "SELECT id FROM mailboxes WHERE connector <> 'imap'"
    conn.execute(sa.text(f"DELETE FROM messages WHERE mailbox_id IN ({others})"))  # noqa: S608
    conn.execute(sa.text(f"DELETE FROM pending_actions WHERE mailbox_id IN ({others})"))  # noqa: S608
    dropped = {r.id for r in conn.execute(sa.text(others))}
    rows = conn.execute(sa.select(_cursor_rows("scope", "epoch", "position"))).all()
    old = [r for r in rows if r.mailbox_id not in dropped]
    cursors = [
        {
            "mailbox_id": r.mailbox_id,
            "folder": r.scope,
            "uidvalidity": int(r.epoch),
            "last_uid": int(r.position),
            "updated_at": r.updated_at,
        }
        for r in old
    ]
    _cursors(
        [
            sa.Column("folder", sa.String(500), nullable=False),
            sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
            sa.Column("last_uid", sa.BigInteger(), nullable=False),
            sa.Column("highestmodseq", sa.BigInteger(), nullable=True),
        ],
        cursors,
    )
    _locations(to_strings=False)
    # not a batch: recreating ``mailboxes`` on SQLite would cascade-delete every mailbox's rows
    op.drop_column("mailboxes", "connector")
