"""Migration 0015_leases on rows written at 0008, on SQLite and PostgreSQL: every lease held
before the upgrade is held after it (same holder, same expiry) in ``leases``, the state that
shared the old rows stays (the watcher's state, the fan-out cursor), and the way down writes the
leases back."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import insert, select

from mailport import leases
from mailport.janitor import claim_run
from mailport.store import current_revision, head_revision, open_database, upgrade
from mailport.store.tables import UTCDateTime
from mailport.store.tables import leases as leases_table
from mailport.sync import repository as sync_repo
from tests.fixtures.migrations import downgrade, insert_mailbox

NOW = datetime.now(UTC).replace(microsecond=0)
UNTIL = NOW + timedelta(minutes=10)
TENANT, MAILBOX, FLOW = "ten_01m7zh4d94fxj51fc0rsy5n5tt", "mbx_01m7zh4d94fxj51fc0rsy5n5mm", "dev_01"
WATCHER_OWNER = "host-a:41:aaaa"  # another host: only the expiry frees its lease
DISPATCHER_OWNER = "host-b:42:bbbb"
JANITOR_OWNER = f"{socket.gethostname()}:1:cccc"  # this host, pid 1: alive

# the tables as they were at 0008
watcher_leases = sa.table(
    "watcher_leases",
    sa.column("mailbox_id", sa.String),
    sa.column("owner", sa.String),
    sa.column("expires_at", UTCDateTime()),
    sa.column("state", sa.String),
    sa.column("last_connected_at", UTCDateTime()),
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
    *(
        sa.column(c, sa.String)
        for c in ("id", "tenant_id", "provider", "user_code", "verification_uri", "status")
    ),
    sa.column("interval", sa.Integer),
    sa.column("device_code_enc", sa.Text),
    *(sa.column(c, UTCDateTime()) for c in ("expires_at", "poll_lease_until", "created_at", "updated_at")),
)
refresh_lease = sa.table(
    "mailboxes", sa.column("id", sa.String), sa.column("oauth_refresh_lease_until", UTCDateTime())
)


async def test_every_held_lease_moves_to_the_leases_table_and_back(fresh_database_url: str) -> None:
    database = open_database(fresh_database_url)
    try:
        await upgrade(database, "0008_oauth_resilience")
        async with database.transaction() as conn:
            await insert_mailbox(
                conn,
                TENANT,
                MAILBOX,
                at=NOW,
                email_key="a@example.test",
                auth_method="oauth2",
                after_processing="none",
                oauth_refresh_lease_until=UNTIL,
            )
            await conn.execute(
                insert(watcher_leases).values(
                    mailbox_id=MAILBOX,
                    owner=WATCHER_OWNER,
                    expires_at=UNTIL,
                    state="connected",
                    last_connected_at=NOW,
                    updated_at=NOW,
                )
            )
            await conn.execute(
                insert(delivery_state),
                [
                    {
                        "name": "dispatcher",
                        "fanout_seq": 6,
                        "owner": DISPATCHER_OWNER,
                        "lease_until": UNTIL,
                        "updated_at": NOW,
                    },
                    {
                        "name": "janitor",
                        "fanout_seq": 0,
                        "owner": JANITOR_OWNER,
                        "lease_until": UNTIL,
                        "updated_at": NOW,
                    },
                ],
            )
            await conn.execute(
                insert(device_flows).values(
                    id=FLOW,
                    tenant_id=TENANT,
                    provider="microsoft",
                    user_code="ABCD-EFGH",
                    verification_uri="https://login.example.test/device",
                    status="pending",
                    interval=5,
                    device_code_enc="not-read-here",
                    expires_at=UNTIL,
                    poll_lease_until=UNTIL,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )

        await upgrade(database)
        assert await current_revision(database) == head_revision()

        async with database.connect() as conn:
            moved = {
                row.name: (row.holder, row.token, row.expires_at)
                for row in await conn.execute(select(leases_table))
            }
            assert moved == {
                f"watcher:{MAILBOX}": (WATCHER_OWNER, 1, UNTIL),
                "dispatcher": (DISPATCHER_OWNER, 1, UNTIL),
                "janitor": (JANITOR_OWNER, 1, UNTIL),
                f"device_poll:{FLOW}": ("migrated", 1, UNTIL),
                f"token_refresh:{MAILBOX}": ("migrated", 1, UNTIL),
            }
            state = await sync_repo.leases_of(conn, [MAILBOX], now=NOW)
            assert state[MAILBOX].state == "connected" and state[MAILBOX].last_connected_at == NOW
            fanout = dict(
                (await conn.execute(sa.select(delivery_state.c.name, delivery_state.c.fanout_seq))).all()
            )
            assert fanout == {"dispatcher": 6}  # the janitor's row held nothing but its claim
        # still held: the hour stays claimed, the watcher stays with its process
        assert not await claim_run(database, leases.new_holder(), now=NOW, hold=timedelta(minutes=54))
        async with database.transaction() as conn:
            assert (
                await sync_repo.acquire_lease(
                    conn, MAILBOX, "host-c:3:cccc", now=NOW, ttl=timedelta(seconds=30)
                )
                is None
            )
            after_expiry = await sync_repo.acquire_lease(
                conn, MAILBOX, "host-c:3:cccc", now=UNTIL, ttl=timedelta(seconds=30)
            )
            assert after_expiry is not None and after_expiry.token == 2

        await downgrade(database, "0008_oauth_resilience")
        async with database.connect() as conn:
            back = (await conn.execute(select(watcher_leases))).one()
            assert (back.owner, back.expires_at, back.state) == (
                "host-c:3:cccc",
                UNTIL + timedelta(seconds=30),
                "connected",
            )
            rows = await conn.execute(
                sa.select(
                    delivery_state.c.name,
                    delivery_state.c.owner,
                    delivery_state.c.lease_until,
                    delivery_state.c.fanout_seq,
                )
            )
            assert {r.name: (r.owner, r.lease_until, r.fanout_seq) for r in rows} == {
                "dispatcher": (DISPATCHER_OWNER, UNTIL, 6),
                "janitor": (JANITOR_OWNER, UNTIL, 0),
            }
            assert (await conn.execute(select(device_flows.c.poll_lease_until))).scalar_one() == UNTIL
            assert (
                await conn.execute(select(refresh_lease.c.oauth_refresh_lease_until))
            ).scalar_one() == UNTIL
        await upgrade(database)  # and up again
        assert await current_revision(database) == head_revision()
    finally:
        await database.aclose()
