"""One table for every lease: ``leases`` (name, holder, fencing token, expiry).

The five leases kept their holder and expiry in five places; they move to ``leases`` rows
(see :mod:`mailport.leases`), and the state that shared those rows stays where it is:

* ``watcher_leases.owner`` / ``expires_at`` -> ``watcher:<mailbox id>``; the table keeps the
  watcher's live state (``state``, ``last_connected_at``) under its older name.
* ``delivery_state.owner`` / ``lease_until`` of the row ``dispatcher`` -> ``dispatcher`` (the
  row keeps the fan-out cursor); of the row ``janitor`` -> ``janitor`` (the row goes: it held
  nothing else).
* ``oauth_device_flows.poll_lease_until`` -> ``device_poll:<flow id>``.
* ``mailboxes.oauth_refresh_lease_until`` -> ``token_refresh:<mailbox id>``. That column stays,
  unused: dropping it would rebuild ``mailboxes`` on SQLite, whose ``DROP TABLE`` cascades to
  every row that refers to a mailbox.

A lease held at the upgrade is still held afterwards, until its expiry (token 1). The device
sign-in and token refresh leases recorded no holder: they get the holder ``migrated``, which no
process is, so they are taken once they expire. The downgrade writes the leases back.

Revision ID: 0015_leases
Revises: 0008_oauth_resilience
Create Date: 2026-12-04
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from mailport.store.tables import UTCDateTime

revision = "0015_leases"
down_revision = "0013_optional_servers"
branch_labels = None
depends_on = None

MIGRATED = "migrated"  # the holder of a lease that recorded none

leases = sa.table(
    "leases",
    sa.column("name", sa.String),
    sa.column("holder", sa.String),
    sa.column("token", sa.BigInteger),
    sa.column("expires_at", UTCDateTime()),
    sa.column("acquired_at", UTCDateTime()),
)
watcher_leases = sa.table(
    "watcher_leases",
    sa.column("mailbox_id", sa.String),
    sa.column("owner", sa.String),
    sa.column("expires_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)
delivery_state = sa.table(
    "delivery_state",
    sa.column("name", sa.String),
    sa.column("fanout_seq", sa.BigInteger),
    sa.column("owner", sa.String),
    sa.column("lease_until", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)
device_flows = sa.table(
    "oauth_device_flows",
    sa.column("id", sa.String),
    sa.column("status", sa.String),
    sa.column("poll_lease_until", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)
mailboxes = sa.table(
    "mailboxes",
    sa.column("id", sa.String),
    sa.column("oauth_refresh_lease_until", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)


def _lease(name: str, holder: str, until: Any, since: Any) -> dict[str, Any]:
    return {"name": name, "holder": holder, "token": 1, "expires_at": until, "acquired_at": since}


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("holder", sa.String(100), nullable=True),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("acquired_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )
    op.create_index("ix_leases_holder", "leases", ["holder"])
    conn = op.get_bind()
    w, d, f, m = watcher_leases.c, delivery_state.c, device_flows.c, mailboxes.c
    rows = [
        _lease(f"watcher:{r.mailbox_id}", r.owner, r.expires_at, r.updated_at)
        for r in conn.execute(sa.select(w.mailbox_id, w.owner, w.expires_at, w.updated_at))
    ]
    rows += [
        _lease(r.name, r.owner, r.lease_until, r.updated_at)
        for r in conn.execute(
            sa.select(d.name, d.owner, d.lease_until, d.updated_at).where(
                d.owner.is_not(None), d.lease_until.is_not(None)
            )
        )
    ]
    rows += [
        _lease(f"device_poll:{r.id}", MIGRATED, r.poll_lease_until, r.updated_at)
        for r in conn.execute(
            sa.select(f.id, f.poll_lease_until, f.updated_at).where(
                f.status == "pending", f.poll_lease_until.is_not(None)
            )
        )
    ]
    rows += [
        _lease(f"token_refresh:{r.id}", MIGRATED, r.oauth_refresh_lease_until, r.updated_at)
        for r in conn.execute(
            sa.select(m.id, m.oauth_refresh_lease_until, m.updated_at).where(
                m.oauth_refresh_lease_until.is_not(None)
            )
        )
    ]
    if rows:
        conn.execute(sa.insert(leases), rows)
    conn.execute(
        sa.update(mailboxes)
        .where(m.oauth_refresh_lease_until.is_not(None))
        .values(oauth_refresh_lease_until=None)
    )
    conn.execute(sa.delete(delivery_state).where(d.name == "janitor"))
    with op.batch_alter_table("watcher_leases") as batch:
        batch.drop_column("owner")
        batch.drop_column("expires_at")
    with op.batch_alter_table("delivery_state") as batch:
        batch.drop_column("owner")
        batch.drop_column("lease_until")
    with op.batch_alter_table("oauth_device_flows") as batch:
        batch.drop_column("poll_lease_until")


def downgrade() -> None:
    with op.batch_alter_table("oauth_device_flows") as batch:
        batch.add_column(sa.Column("poll_lease_until", UTCDateTime(), nullable=True))
    with op.batch_alter_table("delivery_state") as batch:
        batch.add_column(sa.Column("owner", sa.String(100), nullable=True))
        batch.add_column(sa.Column("lease_until", UTCDateTime(), nullable=True))
    with op.batch_alter_table("watcher_leases") as batch:
        batch.add_column(sa.Column("owner", sa.String(100), nullable=True))
        batch.add_column(sa.Column("expires_at", UTCDateTime(), nullable=True))
    conn = op.get_bind()
    held_c, w, d = leases.c, watcher_leases.c, delivery_state.c
    held = conn.execute(
        sa.select(held_c.name, held_c.holder, held_c.expires_at, held_c.acquired_at).where(
            held_c.holder.is_not(None)
        )
    ).all()
    for row in held:
        kind, _, key = row.name.partition(":")
        if kind == "watcher":
            conn.execute(
                sa.update(watcher_leases)
                .where(w.mailbox_id == key)
                .values(owner=row.holder, expires_at=row.expires_at)
            )
        elif kind in ("dispatcher", "janitor"):
            values = {"owner": row.holder, "lease_until": row.expires_at}
            if not conn.execute(sa.update(delivery_state).where(d.name == kind).values(**values)).rowcount:
                conn.execute(
                    sa.insert(delivery_state).values(
                        name=kind, fanout_seq=0, updated_at=row.acquired_at, **values
                    )
                )
        elif kind == "device_poll":
            conn.execute(
                sa.update(device_flows)
                .where(device_flows.c.id == key)
                .values(poll_lease_until=row.expires_at)
            )
        elif kind == "token_refresh":
            conn.execute(
                sa.update(mailboxes)
                .where(mailboxes.c.id == key)
                .values(oauth_refresh_lease_until=row.expires_at)
            )
    conn.execute(sa.delete(watcher_leases).where(w.owner.is_(None)))  # the old rows were the leases
    with op.batch_alter_table("watcher_leases") as batch:
        batch.alter_column("owner", existing_type=sa.String(100), nullable=False)
        batch.alter_column("expires_at", existing_type=UTCDateTime(), nullable=False)
    op.drop_index("ix_leases_holder", table_name="leases")
    op.drop_table("leases")
