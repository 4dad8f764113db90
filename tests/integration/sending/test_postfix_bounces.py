"""A real MTA's bounce: mailport sends through Postfix to an address Postfix accepts and then
cannot deliver (``bounceme…``, the ``error`` transport); Postfix's bounce daemon mails its own
delivery status notification to the sender, and mailport's watcher turns it into
``message.bounced`` linked to the send. The hand-written corpus (tests/data/bounces) is checked
against a real Postfix DSN here."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from mailport.events import EventType
from mailport.messages.bounces import Bounce, classify
from mailport.sending.models import SendRequest, SendState
from mailport.sending.worker import SendWorker
from mailport.store.tables import events
from mailport.sync import Orchestrator, WatcherOptions
from tests.integration.sending.outbox_bed import Box
from tests.integration.sending.postfix_bed import (
    Account,
    Imap,
    database_url,
    events_of,
    recipient,
    sender,
    settings,
    settled,
    wait_until,
    worker,
)
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.postfix import BOUNCE_PREFIX

__all__ = ["database_url", "recipient", "sender", "settings", "worker"]


@pytest.fixture
async def watching(sender: Box) -> AsyncIterator[Orchestrator]:
    """The watchers, reading the sender's INBOX as ingestion does."""
    orchestrator = Orchestrator(
        sender.services,
        reconcile_interval=0.2,
        options=WatcherOptions(backoff_base=0.2, backoff_cap=1.0, auth_retry_seconds=600),
    )
    await orchestrator.start()
    try:
        yield orchestrator
    finally:
        await orchestrator.stop()


def postfix_dsn(dovecot: Dovecot, box: Box) -> bytes:
    """Postfix's notification in the sender's INBOX (it comes from MAILER-DAEMON)."""
    with Imap(dovecot, box.email, box.password) as imap:

        def found() -> list[bytes]:
            imap.select("INBOX")
            return [imap.raw(uid) for uid in imap.search("FROM", "MAILER-DAEMON")]

        [raw] = wait_until(found, what=f"Postfix's bounce at {box.email}", timeout=30)
    return raw


async def bounced_events(box: Box) -> list[dict[str, Any]]:
    async with box.services.database.connect() as conn:
        rows = (
            await conn.execute(
                select(events).where(
                    events.c.type == EventType.MESSAGE_BOUNCED, events.c.mailbox_id == box.mailbox_id
                )
            )
        ).all()
    return [json.loads(r.payload) for r in rows]


async def test_postfixs_own_bounce_becomes_message_bounced_linked_to_the_send(
    sender: Box, recipient: Account, dovecot: Dovecot, worker: SendWorker, watching: Orchestrator
) -> None:
    gone = f"{BOUNCE_PREFIX}-{uuid.uuid4().hex[:6]}@example.test"
    request = SendRequest(to=(gone,), subject="Your invoice", text="Please find it attached.\n")
    queued = (await sender.services.sending.send(sender.tenant_id, sender.mailbox_id, request)).send
    sent = await settled(sender, queued.id)
    assert sent.state is SendState.SENT  # Postfix accepted it; the failure comes later, by mail

    raw = postfix_dsn(dovecot, sender)
    assert b"Content-Type: multipart/report; report-type=delivery-status;" in raw
    report = classify(raw)
    assert isinstance(report, Bounce) and report.failed and report.severity == "hard"
    assert report.original_message_id is not None
    assert report.original_message_id.strip("<>") == queued.message_id
    assert report.reporting_mta is not None and "mx.example.test" in report.reporting_mta
    [status] = report.recipients
    assert status.recipient == gone and status.action == "failed" and status.status == "5.1.1"
    assert status.diagnostic is not None and "The test bed bounces this address" in status.diagnostic

    linked: list[dict[str, Any]] = []
    for _ in range(300):  # the watcher ingests it within a second or so
        linked = [e for e in await bounced_events(sender) if e["send_id"] == queued.id]
        if linked:
            break
        await asyncio.sleep(0.1)
    [event] = linked
    assert event["message_id"].strip("<>") == queued.message_id
    assert [(r["address"], r["action"], r["status"], r["severity"]) for r in event["recipients"]] == [
        (gone, "failed", "5.1.1", "hard")
    ]
    assert await events_of(sender.services, queued.id, EventType.MESSAGE_SEND_FAILED) == []
