"""Retention on SQLite and PostgreSQL: exactly what the janitor removes and what it keeps, the
API's answers afterwards (410 for an expired source, pull paging), ``--dry-run``, the CLI, and
the background janitor with its hourly claim.

The rows are written by the real functions (ingestion pipeline, event log, webhook repository,
OAuth stores, statistics), then dated back with an UPDATE.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text, update

from mailport.bootstrap import Services, build
from mailport.config import Settings
from mailport.connectors.base import Batch, Cursor, RemoteMessage
from mailport.crypto import Secret
from mailport.delivery.models import DeliveryStatus
from mailport.delivery.outbox import AttemptRecord
from mailport.delivery.signing import generate_secret
from mailport.events import EventType, NewEvent
from mailport.janitor import Janitor, claim_run
from mailport.mailboxes.models import (
    AuthMethod,
    Mailbox,
    NewMailbox,
    ProcessingSettings,
    Security,
    ServerSettings,
)
from mailport.oauth.repository import DatabaseStateStore, DeviceFlowRecord, DeviceFlowRepository
from mailport.store.retention import PurgeReport, _raw_expired, purge
from mailport.store.tables import (
    events,
    mailbox_stats,
    messages,
    oauth_device_flows,
    oauth_states,
    pending_actions,
    webhook_attempts,
    webhook_deliveries,
)
from mailport.sync import repository as repo
from mailport.sync.pipeline import parse_chunk, store_chunk
from tests.fixtures.api import TenantHandle
from tests.integration.store.test_cli import Cli

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)  # past the default 30 days


def _mail(subject: str, body: str = "hello") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.test", "b@example.test", subject
    msg["Message-ID"] = f"<{subject.replace(' ', '.')}@example.test>"
    msg.set_content(body)
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="r.pdf")
    return msg.as_bytes().replace(b"\n", b"\r\n")


@dataclass
class World:
    """What :func:`seed` made, by role (see its docstring)."""

    tenant_id: str
    mailbox: Mailbox
    seqs: dict[str, int]
    message_ids: dict[str, str]


async def _mailbox(services: Services, tenant_id: str) -> Mailbox:
    return await services.mailboxes.create(
        tenant_id,
        NewMailbox(
            email="inbox@example.test",
            auth_method=AuthMethod.PASSWORD,
            imap=ServerSettings("imap.example.test", 993, Security.SSL),
            password=Secret("pw"),
            settings=ProcessingSettings(after_processing="mark_read"),
        ),
    )


async def _ingest(services: Services, mailbox: Mailbox, cursor: Cursor, remotes: list[RemoteMessage]) -> None:
    parsed = await parse_chunk(mailbox.id, cursor.scope, remotes)
    async with services.events.transaction() as conn:
        await store_chunk(
            conn,
            mailbox,
            Batch(remotes, cursor),
            parsed,
            now=NOW,
            check_known=cursor.epoch != "1",
            started=time.perf_counter(),
        )


async def seed(services: Services, tenant_id: str) -> World:
    """Six events of one tenant, in seq order, delivered to one webhook endpoint:

    * ``old_accepted`` — message (raw), accepted 40 days ago, its action done: everything goes;
    * ``old_unaccepted`` — message, never accepted (a dead letter): stays, with its source;
    * ``old_action_pending`` — message, accepted 40 days ago, its action still pending: stays;
    * ``old_oversized`` — oversized message (no source), accepted 40 days ago: goes;
    * ``new_accepted`` — message of today, accepted: stays;
    * ``newest`` — ``mailbox.connected``, accepted 40 days ago but the newest of all: stays.

    Plus ``matched``: the first message again under a new UIDVALIDITY (recognised, no event).
    """
    mailbox = await _mailbox(services, tenant_id)
    endpoint = await services.webhooks.repository.endpoints.create(
        tenant_id,
        url="https://hooks.example.test/in",
        types=None,
        description=None,
        secret=generate_secret(),
        now=NOW,
    )
    names = ["old_accepted", "old_unaccepted", "old_action_pending", "old_oversized", "new_accepted"]
    remotes = [RemoteMessage(item=str(i + 1), size=len(_mail(n)), raw=_mail(n)) for i, n in enumerate(names)]
    remotes[3] = RemoteMessage(item="4", size=30_000_000, headers=b"Subject: big\r\n\r\n", oversized=True)
    await _ingest(services, mailbox, Cursor("INBOX", "1", "5"), remotes)
    await services.events.append(NewEvent(tenant_id, mailbox.id, EventType.MAILBOX_CONNECTED, {}, "conn:1"))
    await _ingest(
        services,
        mailbox,
        Cursor("INBOX", "2", "1"),
        [RemoteMessage(item="1", size=1, raw=_mail("old_accepted"))],
    )

    async with services.database.connect() as conn:
        rows = (await conn.execute(select(events.c.seq, events.c.id).order_by(events.c.seq))).all()
        by_event = {r.event_id: r.id for r in await conn.execute(select(messages)) if r.event_id}
        matched = (
            await conn.execute(select(messages.c.id).where(messages.c.event_id.is_(None)))
        ).scalar_one()
    assert len(rows) == 6
    roles = [*names, "newest"]
    seqs = {role: int(row.seq) for role, row in zip(roles, rows, strict=True)}
    event_ids = {role: row.id for role, row in zip(roles, rows, strict=True)}
    message_ids = {role: by_event[event_ids[role]] for role in names} | {"matched": matched}

    repository = services.webhooks.repository
    async with services.events.transaction() as conn:
        assert (await repository.outbox.fanout(conn, [endpoint], batch=100, now=NOW)).count == 6
        deliveries = {
            int(r.event_seq): r.id
            for r in await conn.execute(select(webhook_deliveries.c.event_seq, webhook_deliveries.c.id))
        }

        def attempt(role: str, status: DeliveryStatus, result: str = "success") -> AttemptRecord:
            return AttemptRecord(
                delivery_id=deliveries[seqs[role]],
                event_seq=seqs[role],
                attempted_at=NOW,
                result=result,
                status_code=200 if result == "success" else 500,
                error=None if result == "success" else "HTTP 500",
                duration_ms=5,
                new_status=status,
                next_attempt_at=None,
                window_started_at=NOW,
            )

        records = [attempt(r, DeliveryStatus.DELIVERED) for r in roles if r != "old_unaccepted"]
        records += [
            attempt("old_unaccepted", s, "http_error") for s in (DeliveryStatus.PENDING, DeliveryStatus.DEAD)
        ]
        await repository.outbox.record(conn, endpoint.id, records)
        assert await repository.outbox.accept_completed(conn, seqs.values(), now=NOW) == 5
        done = [seqs[r] for r in ("old_accepted", "old_oversized", "new_accepted")]
        action_ids = (
            await conn.execute(
                select(pending_actions.c.id)
                .join(events, events.c.id == pending_actions.c.event_id)
                .where(events.c.seq.in_(done))
            )
        ).scalars()
        await repo.finish_actions(conn, list(action_ids), state="done", now=NOW)
        # two expired OAuth nonces (one a day past expiry), two device flows, two statistics hours
        await repo.add_stats(conn, mailbox.id, at=NOW - timedelta(hours=50), processed=3)
        await repo.add_stats(conn, mailbox.id, at=NOW - timedelta(hours=1), processed=2)
    states = DatabaseStateStore(services.database)
    assert await states.consume("nonce-old", expires_at=NOW - timedelta(days=2))
    assert await states.consume("nonce-recent", expires_at=NOW - timedelta(hours=1))
    flows = DeviceFlowRepository(services.database, services.key_ring)
    for flow_id, expires in (("dfl_old", NOW - timedelta(days=3)), ("dfl_live", NOW + timedelta(minutes=5))):
        await flows.create(
            DeviceFlowRecord(
                flow_id, tenant_id, "google", None, None, Secret("device-code"), "ABCD-EFGH",
                "https://example.test/device", None, 5, expires, "pending", None, None,
            ),
            now=NOW,
        )  # fmt: skip

    old_roles = [r for r in roles if r != "new_accepted"]
    old_seqs = [seqs[r] for r in old_roles]
    d, a = webhook_deliveries, webhook_attempts
    async with services.database.transaction() as conn:
        await conn.execute(update(events).where(events.c.seq.in_(old_seqs)).values(created_at=OLD))
        await conn.execute(
            update(events)
            .where(events.c.seq.in_(old_seqs), events.c.accepted_at.is_not(None))
            .values(accepted_at=OLD)
        )
        old_messages = [message_ids[r] for r in [*old_roles, "matched"] if r in message_ids]
        await conn.execute(update(messages).where(messages.c.id.in_(old_messages)).values(created_at=OLD))
        await conn.execute(
            update(d).where(d.c.event_seq.in_(old_seqs)).values(created_at=OLD, last_attempt_at=OLD)
        )
        await conn.execute(
            update(a)
            .where(a.c.delivery_id.in_(select(d.c.id).where(d.c.event_seq.in_(old_seqs))))
            .values(attempted_at=OLD)
        )
    return World(tenant_id, mailbox, seqs, message_ids)


COUNTED = {
    "events": events,
    "messages_with_raw": messages,
    "webhook_deliveries": webhook_deliveries,
    "webhook_attempts": webhook_attempts,
    "pending_actions": pending_actions,
    "oauth_states": oauth_states,
    "oauth_device_flows": oauth_device_flows,
    "mailbox_stats": mailbox_stats,
}


async def row_counts(services: Services) -> dict[str, int]:
    out = {}
    async with services.database.connect() as conn:
        for name, table in COUNTED.items():
            query = select(func.count()).select_from(table)
            if name == "messages_with_raw":
                query = query.where(messages.c.raw.is_not(None))
            out[name] = int((await conn.execute(query)).scalar_one())
    return out


EXPECTED = {
    "raw_sources": 3,  # old_accepted, old_action_pending, matched
    "events": 2,  # old_accepted, old_oversized
    "webhook_deliveries": 2,  # theirs
    "webhook_attempts": 6,  # theirs (2) + old_unaccepted's dead letter (2) + old_action_pending + newest
    "pending_actions": 2,  # the done actions of the two events
    "oauth_states": 1,
    "oauth_device_flows": 1,
    "mailbox_stats": 1,
}


async def test_purge_removes_exactly_the_expired_rows_and_the_api_follows(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient
) -> None:
    world = await seed(services, tenant.id)
    before = await row_counts(services)

    dry = await purge(services.database, now=NOW, retention_days=30, dry_run=True)
    assert dry.dry_run and dry.counts() == EXPECTED
    assert await row_counts(services) == before  # a dry run changes nothing

    report = await purge(services.database, now=NOW, retention_days=30, batch_size=2)  # several batches
    assert report.counts() == EXPECTED and not report.dry_run
    after = await row_counts(services)
    assert {name: before[name] - after[name] for name in before} == {
        "events": 2,
        "messages_with_raw": 3,
        "webhook_deliveries": 2,
        "webhook_attempts": 6,
        "pending_actions": 2,
        "oauth_states": 1,
        "oauth_device_flows": 1,
        "mailbox_stats": 1,
    }
    assert (await purge(services.database, now=NOW, retention_days=30)).total == 0  # idempotent

    seqs = world.seqs
    async with services.database.connect() as conn:
        kept = set((await conn.execute(select(events.c.seq))).scalars())
        assert kept == {seqs[r] for r in ("old_unaccepted", "old_action_pending", "new_accepted", "newest")}
        rows = {r.id: r for r in await conn.execute(select(messages))}
        dead = (
            await conn.execute(
                select(webhook_deliveries).where(webhook_deliveries.c.event_seq == seqs["old_unaccepted"])
            )
        ).one()
        actions = {r.state for r in await conn.execute(select(pending_actions))}
        assert (await conn.execute(select(oauth_states.c.nonce))).scalars().all() == ["nonce-recent"]
        assert (await conn.execute(select(oauth_device_flows.c.id))).scalars().all() == ["dfl_live"]
        known = await repo.known_from_other_epochs(
            conn,
            world.mailbox.id,
            "INBOX",
            "3",
            sha256=[rows[world.message_ids["old_accepted"]].sha256],
            message_ids=[],
        )
    assert len(rows) == 6  # message rows stay: they recognise mail after a UIDVALIDITY change
    assert known.sha256 == {rows[world.message_ids["old_accepted"]].sha256}
    ids = world.message_ids
    for role in ("old_accepted", "old_action_pending", "matched"):
        assert rows[ids[role]].raw is None and rows[ids[role]].raw_purged_at is not None, role
    for role in ("old_unaccepted", "new_accepted"):
        assert rows[ids[role]].raw is not None and rows[ids[role]].raw_purged_at is None, role
    assert rows[ids["old_oversized"]].raw is None and rows[ids["old_oversized"]].raw_purged_at is None
    assert dead.status == "dead" and dead.attempts == 2  # the dead letter stays, replayable, with its summary
    assert actions == {"pending", "done"}  # old pending actions stay; the new event's done action too

    base = f"/v1/mailboxes/{world.mailbox.id}/messages"
    for path in (f"{ids['old_accepted']}/raw", f"{ids['old_accepted']}/attachments/0"):
        gone = await tenant_client.get(f"{base}/{path}")
        assert gone.status_code == 410, gone.text
        assert gone.json()["error"] == "message_source_expired" and "RETENTION" in gone.json()["hint"]
    oversized = await tenant_client.get(f"{base}/{ids['old_oversized']}/raw")
    assert oversized.status_code == 404 and oversized.json()["error"] == "raw_not_stored"
    for role in ("old_unaccepted", "new_accepted"):
        raw = await tenant_client.get(f"{base}/{ids[role]}/raw")
        assert raw.status_code == 200 and b"Subject: " + role.encode() in raw.content
    attachment = await tenant_client.get(f"{base}/{ids['new_accepted']}/attachments/0")
    assert attachment.status_code == 200 and attachment.content == b"%PDF-1.4 fake"

    # the pull API pages over the gaps, and a new event comes after every cursor
    pages, cursor = [], "0"
    while True:
        page = (await tenant_client.get("/v1/events", params={"after": cursor, "limit": 2})).json()
        if not page["items"]:
            assert page["next_cursor"] == cursor
            break
        pages.append([int(item["cursor"]) for item in page["items"]])
        cursor = page["next_cursor"]
    assert pages == [
        [seqs["old_unaccepted"], seqs["old_action_pending"]],
        [seqs["new_accepted"], seqs["newest"]],
    ]
    await services.events.append(
        NewEvent(tenant.id, world.mailbox.id, EventType.MAILBOX_ERROR, {}, "err:after")
    )
    later = (await tenant_client.get("/v1/events", params={"after": cursor})).json()
    assert [item["type"] for item in later["items"]] == ["mailbox.error"]
    assert int(later["items"][0]["cursor"]) > seqs["newest"]


async def test_zero_keeps_events_and_sources_forever_and_raw_retention_is_separate(
    services: Services, tenant: TenantHandle
) -> None:
    world = await seed(services, tenant.id)
    forever = await purge(services.database, now=NOW, retention_days=0, dry_run=True)
    assert (forever.raw_sources, forever.events, forever.webhook_attempts) == (0, 0, 0)
    assert (forever.oauth_states, forever.mailbox_stats) == (1, 1)  # housekeeping still applies
    sources_only = await purge(services.database, now=NOW, retention_days=0, raw_retention_days=30)
    assert sources_only.raw_sources == 3 and sources_only.events == 0
    longer = await purge(services.database, now=NOW, retention_days=30, raw_retention_days=60, dry_run=True)
    assert longer.raw_sources == 0 and longer.events == 2
    async with services.database.connect() as conn:
        assert len((await conn.execute(select(events.c.seq))).all()) == len(world.seqs)


async def test_the_janitor_runs_in_the_background_once_per_interval_across_processes(
    services: Services, tenant: TenantHandle, caplog: pytest.LogCaptureFixture
) -> None:
    await seed(services, tenant.id)
    caplog.set_level(logging.INFO, logger="mailport.janitor")
    clock = [NOW]
    first = Janitor(
        services.database, retention_days=30, first_delay=0, interval=3600, clock=lambda: clock[0]
    )
    other = Janitor(
        services.database, retention_days=30, first_delay=0, interval=3600, clock=lambda: clock[0]
    )
    first.start()
    try:
        deadline = time.monotonic() + 10
        while first.last_report is None:
            assert time.monotonic() < deadline, "the janitor did not run"
            await asyncio.sleep(0.02)
    finally:
        await first.stop()
    assert first.last_report.counts() == EXPECTED
    lines = [r.getMessage() for r in caplog.records if r.name == "mailport.janitor"]
    assert lines == ["retention: purged " + PurgeReport(**EXPECTED).summary()]
    assert await other.run_once() is None  # this hour is claimed by the first process
    clock[0] = NOW + timedelta(minutes=55)
    again = await other.run_once()  # the claim lapsed: the other process takes this hour
    assert again is not None and again.total == 0
    assert not await claim_run(services.database, first.owner, now=clock[0], hold=timedelta(minutes=54))
    caplog.clear()
    assert (await first.run_once()) is None and not caplog.records


async def test_serve_runs_the_janitor(services: Services) -> None:
    from mailport.api import create_app

    app = create_app(services=services)
    app.state.serve = True
    async with app.router.lifespan_context(app):
        assert app.state.janitor.running
    assert not app.state.janitor.running


def test_cli_purge_dry_run_then_for_real(
    settings: Settings,
    secret_key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def prepare() -> dict[str, int]:
        services = await build(settings, migrate=True)
        try:
            tenant, _key = await services.tenants.create_tenant("acme")
            await seed(services, tenant.id)
            return await row_counts(services)
        finally:
            await services.aclose()

    async def counts() -> dict[str, int]:
        services = await build(settings)
        try:
            return await row_counts(services)
        finally:
            await services.aclose()

    before = asyncio.run(prepare())
    cli = Cli(
        monkeypatch,
        capsys,
        tmp_path,
        MAILPORT_DATABASE_URL=settings.database_url,
        MAILPORT_SECRET_KEYS=secret_key,
    )
    dry = cli("db", "purge", "--dry-run", "--json")
    assert json.loads(dry.stdout) == {**EXPECTED, "dry_run": True} and "nothing was changed" in dry.stderr
    assert asyncio.run(counts()) == before
    done = cli("db", "purge")
    assert done.stdout.splitlines() == [f"{name}: {count}" for name, count in EXPECTED.items()]
    assert asyncio.run(counts())["events"] == before["events"] - 2
    assert json.loads(cli("db", "purge", "--json").stdout) == {name: 0 for name in EXPECTED} | {
        "dry_run": False
    }


async def test_the_purge_index_only_holds_messages_that_keep_a_source(services: Services) -> None:
    """Finding expired sources reads a small partial index, never the 25 MB rows."""
    if services.database.dialect == "sqlite":
        query = "SELECT sql FROM sqlite_master WHERE name = 'ix_messages_raw_created_at'"
    else:
        query = (
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_messages_raw_created_at'"
            " AND schemaname = current_schema()"  # the test's own schema, not the others' of the run
        )
    async with services.database.connect() as conn:
        definition = (await conn.execute(text(query))).scalar_one()
        assert "raw IS NOT NULL" in definition, definition
        if services.database.dialect == "sqlite":
            candidates = select(messages.c.created_at, messages.c.id).where(_raw_expired(NOW))
            plan = (
                await conn.execute(
                    text(
                        "EXPLAIN QUERY PLAN "
                        + str(
                            candidates.compile(conn.sync_connection, compile_kwargs={"literal_binds": True})
                        )
                    )
                )
            ).all()
            assert any("ix_messages_raw_created_at" in row[-1] for row in plan), plan
