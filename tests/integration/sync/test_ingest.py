"""Ingestion against the real Dovecot, on SQLite and PostgreSQL: latency, exactly-once, \\Seen
mail, poison messages, UIDVALIDITY reset, after-processing only after acceptance."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailport.connectors import imap as imap_connector
from mailport.events import mark_accepted
from mailport.mailboxes.models import Mailbox
from mailport.sync import Orchestrator
from mailport.sync import repository as repo
from tests.integration.sync.conftest import Bed, all_events, make_message, wait_for


async def _connected(bed: Bed, orchestrator: Orchestrator, mailbox_id: str) -> None:
    async def ok() -> bool:
        watcher = orchestrator.watchers.get(mailbox_id)
        return watcher is not None and watcher.status.state == "connected"

    await wait_for(ok, timeout=10)


async def _watched(bed: Bed, orchestrator: Orchestrator, **kw: Any) -> Mailbox:
    """A new mailbox (``bed.add_mailbox(**kw)``), once the running orchestrator's watcher for it
    is connected."""
    mailbox = await bed.add_mailbox(**kw)
    orchestrator.poke()
    await _connected(bed, orchestrator, mailbox.id)
    return mailbox


@pytest.mark.serial
async def test_a_delivered_message_becomes_an_event_within_two_seconds(
    bed: Bed, running: Orchestrator
) -> None:
    mailbox = await _watched(bed, running)
    started = time.monotonic()
    await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message("first one", "héllo wörld"))
    got = await wait_for(lambda: bed.received(mailbox.id), timeout=10)
    assert time.monotonic() - started < 10.0  # IDLE, not the 60 s check (under any load)
    event = got[0]
    assert event.payload["subject"] == "first one"
    assert event.payload["from"] == [{"name": "Sender", "email": "sender@example.test"}]
    assert event.payload["text"].strip() == "héllo wörld"
    assert event.payload["id"].startswith("msg_")
    imap = event.payload["source"]["imap"]
    assert event.idempotency_key == f"msg:{mailbox.id}:{imap['uidvalidity']}:{imap['uid']}"
    connected = await all_events(bed.services, mailbox_id=mailbox.id, type="mailbox.connected")
    assert len(connected) == 1
    async with bed.services.database.connect() as conn:
        row = await repo.get_message(conn, bed.tenant_id, mailbox.id, event.payload["id"])
    assert row is not None and b"Subject: first one" in row.raw


async def test_text_after_a_header_without_its_blank_line_reaches_the_event(
    bed: Bed, running: Orchestrator
) -> None:
    mailbox = await _watched(bed, running)
    no_separator = (
        b"From: Sender <sender@example.test>\r\nSubject: no separator\r\n"
        b"Message-ID: <nosep@example.test>\r\nThe text right after the header.\r\n"
    )
    part_into_body = (
        b"From: Sender <sender@example.test>\r\nSubject: part into body\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\nThe part's text.\r\n--b1--\r\n"
    )
    for raw in (no_separator, part_into_body):
        await asyncio.to_thread(bed.dovecot.deliver, bed.user, raw)

    async def both() -> list[object]:
        got = await bed.received(mailbox.id)
        return got if len(got) >= 2 else []

    got = {e.payload["subject"]: e.payload for e in await wait_for(both, timeout=5)}  # type: ignore[attr-defined]
    assert got["no separator"]["text"] == "The text right after the header.\n"
    assert "no blank line after the header" in got["no separator"]["parse_error"]
    assert got["part into body"]["text"] == "The part's text."
    assert got["part into body"]["parse_error"].startswith("part 1: no blank line after the header")


async def test_a_hundred_messages_arrive_once_each(bed: Bed, running: Orchestrator) -> None:
    mailbox = await _watched(bed, running)
    client = await bed.imap()
    try:
        for start in range(0, 100, 25):
            await client.append_many("INBOX", [make_message(f"bulk {i}") for i in range(start, start + 25)])
    finally:
        await client.logout()

    async def hundred() -> list[object]:
        got = await bed.received(mailbox.id)
        return got if len(got) >= 100 else []

    got = await wait_for(hundred, timeout=15)
    await asyncio.sleep(0.5)
    got = await bed.received(mailbox.id)
    assert sorted(e.payload["subject"] for e in got) == sorted(f"bulk {i}" for i in range(100))
    assert len({e.idempotency_key for e in got}) == 100
    uids = [e.payload["source"]["imap"]["uid"] for e in got]
    assert uids == sorted(uids)  # in order


async def test_mail_read_elsewhere_before_mailport_saw_it_is_still_delivered(bed: Bed) -> None:
    mailbox = await bed.add_mailbox()
    orchestrator = bed.orchestrator()
    await orchestrator.start()
    await _connected(bed, orchestrator, mailbox.id)
    await orchestrator.stop()  # mailport is down ...
    await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message("already read"))
    await asyncio.to_thread(
        bed.dovecot.doveadm, "flags", "add", "-u", bed.user, "\\Seen", "mailbox", "INBOX", "all"
    )
    orchestrator = bed.orchestrator()  # ... and comes back
    await orchestrator.start()
    try:
        got = await wait_for(lambda: bed.received(mailbox.id), timeout=10)
    finally:
        await orchestrator.stop()
    assert got[0].payload["subject"] == "already read"
    assert "\\Seen" in got[0].payload["flags"]


async def test_a_backlog_since_creation_is_ingested_whole_and_older_mail_is_not(
    bed: Bed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """First sync places the cursor page by page (a small page here): every message that arrived
    since the mailbox was created is ingested however many pages back, none from before."""
    monkeypatch.setattr(imap_connector, "BASELINE_PAGE", 40)  # the IMAP baseline pages
    client = await bed.imap()
    try:
        old = datetime.now(UTC) - timedelta(days=3)
        for i in range(3):
            await client.append("INBOX", make_message(f"old {i}"), internaldate=old)
        await client.append_many("INBOX", [make_message(f"new {i}") for i in range(130)])
    finally:
        await client.logout()
    mailbox = await bed.add_mailbox()
    orchestrator = bed.orchestrator()
    await orchestrator.start()
    try:

        async def all_new() -> list[object]:
            got = await bed.received(mailbox.id)
            return got if len(got) >= 130 else []

        await wait_for(all_new, timeout=20)
        await asyncio.sleep(0.3)
        got = await bed.received(mailbox.id)
    finally:
        await orchestrator.stop()
    assert sorted(e.payload["subject"] for e in got) == sorted(f"new {i}" for i in range(130))


def _poison_messages() -> list[bytes]:
    broken = (
        b"From: a@example.test\r\nSubject: broken mime\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="never-closed"\r\n\r\n'
        b"--never-closed\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"!!!not base64!!!\r\n--never-closed\r\nContent-Type: message/rfc822\r\n\r\ngarbage"
    )
    charset = (
        b"From: =?x-unknown-9?B?zvXs?= <b@example.test>\r\nSubject: =?x-unknown-9?Q?=E9t=E9?=\r\n"
        b"Content-Type: text/plain; charset=x-unknown-9\r\n\r\n\xe9t\xe9 \xff\xfe\r\n"
    )
    big = make_message("big attachment")
    head, _, _ = big.partition(b"\r\n\r\n")
    blob = (b"A" * 76 + b"\r\n") * (20 * 1024 * 1024 // 78)
    big = (
        b"From: c@example.test\r\nSubject: twenty megabytes\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n'
        b"see attached\r\n--b1\r\nContent-Type: application/octet-stream; name=big.bin\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + blob + b"--b1--\r\n"
    )
    return [broken, charset, big, make_message("after the poison")]


async def test_poison_messages_do_not_block_the_mailbox(bed: Bed, running: Orchestrator) -> None:
    mailbox = await _watched(bed, running)
    client = await bed.imap()
    try:
        for raw in _poison_messages():
            await client.append("INBOX", raw)
    finally:
        await client.logout()

    async def four() -> list[object]:
        got = await bed.received(mailbox.id)
        return got if len(got) >= 4 else []

    got = await wait_for(four, timeout=30)
    subjects = [e.payload["subject"] for e in got]
    assert subjects[0] == "broken mime" and subjects[-1] == "after the poison"
    assert got[0].payload["parse_error"]
    assert got[1].payload["text"] is not None  # decoded with a fallback, not dropped
    assert got[2].payload["size"] > 20_000_000  # 20 MB on the wire (base64)
    assert got[2].payload["attachments"][0]["size"] > 14 * 1024 * 1024


async def test_a_uidvalidity_change_emits_reset_without_redelivering(bed: Bed) -> None:
    client = await bed.imap()
    await client.create("Work")
    old = [make_message(f"old {i}") for i in range(3)]
    await client.append_many("Work", old)
    mailbox = await bed.add_mailbox(folder="Work")
    orchestrator = bed.orchestrator()
    await orchestrator.start()
    try:
        await _connected(bed, orchestrator, mailbox.id)
        await client.append("Work", make_message("old 3"))

        async def four() -> list[object]:
            got = await bed.received(mailbox.id)
            return got if len(got) >= 4 else []

        await wait_for(four, timeout=10)
    finally:
        await orchestrator.stop()
    await client.logout()
    # the folder is recreated (a new UIDVALIDITY) with the same mail plus one new message
    await asyncio.to_thread(bed.dovecot.doveadm, "mailbox", "delete", "-u", bed.user, "Work")
    await asyncio.to_thread(bed.dovecot.doveadm, "mailbox", "create", "-u", bed.user, "Work")
    for raw in [*old, make_message("old 3"), make_message("brand new")]:
        await asyncio.to_thread(bed.dovecot.deliver, bed.user, raw, "Work")
    orchestrator = bed.orchestrator()
    await orchestrator.start()
    try:
        resets = await wait_for(
            lambda: all_events(bed.services, mailbox_id=mailbox.id, type="mailbox.reset"), timeout=10
        )

        async def five() -> list[object]:
            got = await bed.received(mailbox.id)
            return got if len(got) >= 5 else []

        got = await wait_for(five, timeout=10)
        await asyncio.sleep(0.5)
        got = await bed.received(mailbox.id)
    finally:
        await orchestrator.stop()
    assert len(resets) == 1
    imap = resets[0].payload["source"]["imap"]
    assert imap["old_uidvalidity"] != imap["new_uidvalidity"]
    assert [e.payload["subject"] for e in got] == ["old 0", "old 1", "old 2", "old 3", "brand new"]


async def _flags(bed: Bed, folder: str = "INBOX") -> str:
    result = await asyncio.to_thread(
        bed.dovecot.doveadm, "fetch", "-u", bed.user, "flags mailbox", "mailbox", folder, "all"
    )
    return result.stdout.decode()


async def test_after_processing_happens_only_after_acceptance(bed: Bed, running: Orchestrator) -> None:
    mailbox = await _watched(bed, running, after_processing="mark_read")
    await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message("to be read"))
    got = await wait_for(lambda: bed.received(mailbox.id), timeout=5)
    await asyncio.sleep(1.0)
    assert "\\Seen" not in await _flags(bed)  # not accepted yet: untouched
    async with bed.services.events.transaction() as conn:
        await mark_accepted(conn, got[0].id)

    async def seen() -> bool:
        return "\\Seen" in await _flags(bed)

    await wait_for(seen, timeout=5)


async def test_move_after_acceptance(bed: Bed, running: Orchestrator) -> None:
    client = await bed.imap()
    await client.create("Done")
    await client.logout()
    mailbox = await _watched(bed, running, after_processing="move:Done")
    await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message("to be moved"))
    got = await wait_for(lambda: bed.received(mailbox.id), timeout=5)
    await asyncio.sleep(0.5)
    assert "to be moved" not in await _subjects(bed, "Done")
    await bed.services.events.mark_accepted(got[0].id)

    async def moved() -> bool:
        return "to be moved" in await _subjects(bed, "Done")

    await wait_for(moved, timeout=5)
    assert "to be moved" not in await _subjects(bed, "INBOX")


async def test_delete_after_acceptance(bed: Bed, running: Orchestrator) -> None:
    mailbox = await _watched(bed, running, after_processing="delete")
    await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message("to be deleted"))
    await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message("to be kept"))

    async def both() -> list[object]:
        got = await bed.received(mailbox.id)
        return got if len(got) >= 2 else []

    got = await wait_for(both, timeout=5)
    await asyncio.sleep(0.5)
    assert "to be deleted" in await _subjects(bed, "INBOX")  # not accepted yet: untouched
    doomed = next(e for e in got if e.payload["subject"] == "to be deleted")
    await bed.services.events.mark_accepted(doomed.id)

    async def deleted() -> bool:
        return "to be deleted" not in await _subjects(bed, "INBOX")

    await wait_for(deleted, timeout=5)
    assert "to be kept" in await _subjects(bed, "INBOX")  # only the accepted one


async def _subjects(bed: Bed, folder: str) -> str:
    result = await asyncio.to_thread(
        bed.dovecot.doveadm, "fetch", "-u", bed.user, "hdr.subject", "mailbox", folder, "all"
    )
    return result.stdout.decode()


async def test_wrong_password_goes_to_error_once_and_stops_hammering(bed: Bed, running: Orchestrator) -> None:
    mailbox = await bed.add_mailbox(password="not-the-password")
    running.poke()

    async def errored() -> list[object]:
        return await all_events(bed.services, mailbox_id=mailbox.id, type="mailbox.error")

    errors = await wait_for(errored, timeout=10)
    await asyncio.sleep(2.0)  # a retry loop would have logged in again several times by now
    watcher = running.watchers[mailbox.id]
    assert watcher.status.consecutive_failures == 1 and watcher.status.state == "error"
    assert len(await errored()) == 1
    assert errors[0].payload["error"] == "invalid_credentials"
    stored = await bed.services.mailboxes.repository.get_by_id(mailbox.id)
    assert stored.health.status.value == "error" and stored.health.last_error
    assert "not-the-password" not in (stored.health.last_error or "")
