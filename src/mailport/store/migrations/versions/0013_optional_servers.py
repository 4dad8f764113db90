"""Server settings are optional: ``mailboxes.imap_host``, ``imap_port`` and ``imap_security``
may be NULL, for mailboxes whose connector reaches the mail without IMAP.

Every existing mailbox keeps its IMAP settings: only the constraint changes. PostgreSQL drops
``NOT NULL``. SQLite cannot alter a column, and batch mode's copy-and-swap of ``mailboxes``
would drop the old table, which with foreign keys on (every mailport connection) cascades into
every table that references a mailbox: cursors, messages, pending actions would be lost. So
SQLite takes the route its documentation gives for removing a NOT NULL constraint ("Making
Other Kinds Of Table Schema Changes", sqlite.org/lang_altertable.html): the table's stored
``CREATE TABLE`` text is edited under ``writable_schema`` and the schema version is bumped; no
row is touched. The downgrade restores ``NOT NULL`` the same way, and refuses while a mailbox
has no IMAP settings rather than invent a server for it.

Revision ID: 0013_optional_servers
Revises: 0008_oauth_resilience
Create Date: 2026-12-04
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0013_optional_servers"
down_revision = "0012_push"
branch_labels = None
depends_on = None

_COLUMNS = (("imap_host", sa.String(253)), ("imap_port", sa.Integer()), ("imap_security", sa.String(10)))
_DECLARATION = re.compile(
    r"\b(imap_host VARCHAR\(253\)|imap_port INTEGER|imap_security VARCHAR\(10\))( NOT NULL)?"
)


def _sqlite_set_nullable(bind: sa.Connection, *, nullable: bool) -> None:
    """Edit the stored declaration of the three columns (the rows' format does not change)."""
    sql = bind.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'mailboxes'")
    ).scalar()
    edited, count = _DECLARATION.subn(lambda m: m.group(1) + ("" if nullable else " NOT NULL"), str(sql))
    if count != len(_COLUMNS):
        raise RuntimeError(f"mailboxes: expected {len(_COLUMNS)} IMAP column declarations, found {count}")
    version = int(bind.execute(sa.text("PRAGMA schema_version")).scalar() or 0)
    bind.execute(sa.text("PRAGMA writable_schema = ON"))
    bind.execute(
        sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = 'mailboxes'"),
        {"sql": edited},
    )
    bind.execute(sa.text(f"PRAGMA schema_version = {version + 1}"))  # other connections re-read it
    bind.execute(sa.text("PRAGMA writable_schema = OFF"))


def _set_nullable(*, nullable: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _sqlite_set_nullable(bind, nullable=nullable)
        return
    for name, type_ in _COLUMNS:
        op.alter_column("mailboxes", name, existing_type=type_, nullable=nullable)


def upgrade() -> None:
    _set_nullable(nullable=True)


def downgrade() -> None:
    without = (
        op.get_bind().execute(sa.text("SELECT count(*) FROM mailboxes WHERE imap_host IS NULL")).scalar()
    )
    if without:
        raise RuntimeError(
            f"{without} mailbox(es) have no IMAP settings; delete them (or give them IMAP settings) "
            "before downgrading below 0013_optional_servers"
        )
    _set_nullable(nullable=False)
