"""Many workers on many machines (issue 20): a worker registry, a mailbox change log, and the
wizard's check runs in the database.

* ``workers`` — every process that runs background work registers here and heartbeats
  (:mod:`mailport.fleet.registry`); the live rows decide which mailboxes each one watches
  (:mod:`mailport.fleet.assignment`) and what share of the fleet's connection budgets it has.
* ``mailbox_changes`` — one row per mailbox created, deleted, or changed in what its watchers
  depend on (server, credentials, folders, interval, action, disabled), written by triggers so
  that no writer can forget it. Watchers follow ``seq`` instead of reading every mailbox every
  half second; on PostgreSQL the trigger also sends ``NOTIFY mailport_mailbox_changes`` with the
  new ``seq``, so a follower learns of a change at its commit.
* ``check_runs`` — a running connection check of the wizard or the dashboard, so that any API
  instance can serve its page (no sticky sessions).

New tables and triggers: no existing data changes.

Revision ID: 0023_fleet
Revises: 0022_host_apps
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailport.store.tables import SeqInteger, UTCDateTime

revision = "0023_fleet"
down_revision = "0022_host_apps"
branch_labels = None
depends_on = None

# What a watcher depends on (a frozen copy of mailport.sync.orchestrator's fingerprint, plus
# whether the mailbox is disabled): an update that changes none of them is not a change.
WATCHED_COLUMNS = (
    "connector",
    "imap_host",
    "imap_port",
    "imap_security",
    "imap_username",
    "imap_trusted_cert",
    "pop3_host",
    "pop3_port",
    "pop3_security",
    "pop3_username",
    "pop3_trusted_cert",
    "auth_method",
    "password_enc",
    "oauth_provider",
    "oauth_connected_email",
    "folder",
    "folders",
    "check_interval",
    "after_processing",
)


def _changed(distinct: str) -> str:
    columns = [f"OLD.{c} {distinct} NEW.{c}" for c in WATCHED_COLUMNS]
    columns.append(f"(OLD.status = 'disabled') {distinct} (NEW.status = 'disabled')")
    return " OR ".join(columns)


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(100), nullable=False),  # the process's lease holder id
        sa.Column("host", sa.String(253), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("roles", sa.Text(), nullable=False),  # JSON list: "watchers", "api"
        sa.Column("weight", sa.Float(), nullable=False, server_default="1"),
        sa.Column("state", sa.String(16), nullable=False),  # active | draining
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("stats", sa.Text(), nullable=False, server_default="{}"),  # JSON, see fleet.registry
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )
    op.create_index("ix_workers_expires_at", "workers", ["expires_at"])
    op.create_table(
        "mailbox_changes",
        sa.Column("seq", SeqInteger, autoincrement=True, nullable=False),
        sa.Column("mailbox_id", sa.String(40), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_mailbox_changes")),
    )
    op.create_table(
        "check_runs",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column(
            "tenant_id", sa.String(40), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("kind", sa.String(20), nullable=False),  # imap | pop3 | api
        sa.Column("state", sa.String(16), nullable=False),  # running | done | failed
        sa.Column("data", sa.Text(), nullable=False),  # JSON: the steps so far and the result
        sa.Column("runner", sa.String(100), nullable=True),  # the process running it
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_check_runs")),
    )
    op.create_index("ix_check_runs_expires_at", "check_runs", ["expires_at"])

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION mailport_mailbox_changed() RETURNS trigger AS $$
            DECLARE
                changed_id varchar;
                new_seq bigint;
            BEGIN
                IF TG_OP = 'DELETE' THEN
                    changed_id := OLD.id;
                ELSE
                    changed_id := NEW.id;
                END IF;
                INSERT INTO mailbox_changes (mailbox_id, at) VALUES (changed_id, now())
                    RETURNING seq INTO new_seq;
                PERFORM pg_notify('mailport_mailbox_changes', new_seq::text);
                RETURN NULL;
            END
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER mailbox_changes_written AFTER INSERT OR DELETE ON mailboxes "
            "FOR EACH ROW EXECUTE FUNCTION mailport_mailbox_changed()"
        )
        op.execute(
            "CREATE TRIGGER mailbox_changes_updated AFTER UPDATE ON mailboxes FOR EACH ROW "
            f"WHEN ({_changed('IS DISTINCT FROM')}) EXECUTE FUNCTION mailport_mailbox_changed()"
        )
    else:
        op.execute(_sqlite_trigger("mailbox_changes_inserted", "INSERT", "NEW"))
        op.execute(_sqlite_trigger("mailbox_changes_deleted", "DELETE", "OLD"))
        op.execute(_sqlite_trigger("mailbox_changes_updated", "UPDATE", "NEW", _changed("IS NOT")))


def _sqlite_trigger(name: str, event: str, row: str, when: str = "") -> str:
    """A SQLite trigger logging the changed row's id (built from constants only)."""
    condition = f"WHEN {when} " if when else ""
    now = "strftime('%Y-%m-%d %H:%M:%f000', 'now')"
    insert = f"INSERT INTO mailbox_changes (mailbox_id, at) VALUES ({row}.id, {now})"  # noqa: S608
    return f"CREATE TRIGGER {name} AFTER {event} ON mailboxes {condition}BEGIN {insert}; END"


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS mailbox_changes_updated ON mailboxes")
        op.execute("DROP TRIGGER IF EXISTS mailbox_changes_written ON mailboxes")
        op.execute("DROP FUNCTION IF EXISTS mailport_mailbox_changed()")
    else:
        for trigger in ("mailbox_changes_inserted", "mailbox_changes_deleted", "mailbox_changes_updated"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.drop_index("ix_check_runs_expires_at", table_name="check_runs")
    op.drop_table("check_runs")
    op.drop_table("mailbox_changes")
    op.drop_index("ix_workers_expires_at", table_name="workers")
    op.drop_table("workers")
