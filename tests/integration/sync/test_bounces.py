"""Bounces and complaints ingested through the real Dovecot watcher, on SQLite and PostgreSQL.

The hand-written corpus of tests/data/bounces goes into INBOX over IMAP (CRLF, as on the wire)
with a send recorded in ``outbound_messages`` for most originals: every bounce yields one
``message.bounced`` after its own ``message.received``, linked to the send; the ARF report a
``message.complaint``; delivery notices, auto-replies and plain mail nothing more. Re-ingestion
(a cursor put back, an epoch change) appends no second report event.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from mailport.clock import utc_now
from mailport.connectors.base import Cursor
from mailport.events import Event
from mailport.mailboxes.models import Mailbox
from mailport.sync import Orchestrator
from mailport.sync import repository as repo
from tests.fixtures.sends import insert_send
from tests.integration.sync.conftest import Bed, all_events, make_message, wait_for

CORPUS = Path(__file__).parents[2] / "data" / "bounces"
DOMAIN = "mailport.example.org"

# file -> (the original's Message-ID, format, [(address, action, status, severity)])
BOUNCES: dict[str, tuple[str | None, str, list[tuple[str, str, str | None, str]]]] = {
    "rfc3464-failed-two.eml": (
        f"send-0001@{DOMAIN}",
        "dsn",
        [("alice@example.net", "failed", "5.1.1", "hard"), ("bob@example.net", "failed", "5.2.2", "hard")],
    ),
    "rfc3464-delayed.eml": (
        f"send-0002@{DOMAIN}",
        "dsn",
        [("carol@example.net", "delayed", "4.4.7", "soft")],
    ),
    "rfc3464-mixed.eml": (f"send-0004@{DOMAIN}", "dsn", [("frank@example.net", "failed", "4.4.1", "soft")]),
    "postfix-plain.eml": (
        f"send-0005@{DOMAIN}",
        "postfix",
        [("gina@example.net", "failed", "5.1.1", "hard"), ("hank@example.net", "failed", "4.2.2", "soft")],
    ),
    "exim.eml": (f"send-0006@{DOMAIN}", "exim", [("ivy@example.net", "failed", "5.1.1", "hard")]),
    "exim-delayed.eml": (f"send-0007@{DOMAIN}", "exim", [("jack@example.net", "delayed", "4.7.1", "soft")]),
    "exchange.eml": (f"send-0008@{DOMAIN}", "exchange", [("kate@example.net", "failed", "5.1.10", "hard")]),
    "gmail.eml": (f"send-0009@{DOMAIN}", "gmail", [("liam@example.net", "failed", "5.1.1", "hard")]),
    "qmail.eml": (
        f"send-0010@{DOMAIN}",
        "qmail",
        [("mona@example.net", "failed", "5.1.1", "hard"), ("ned@example.net", "failed", "5.1.1", "hard")],
    ),
    "exchange-html.eml": (
        f"send-0012@{DOMAIN}",
        "exchange",
        [("olga@example.net", "failed", "5.1.1", "hard")],
    ),
    "gmail-dsn.eml": (f"send-0013@{DOMAIN}", "dsn", [("pia@example.net", "failed", "5.0.0", "hard")]),
    "postfix-delayed.eml": (None, "postfix", [("uma@example.net", "delayed", None, "soft")]),
    "sendmail-plain.eml": (None, "generic", [("victor@example.net", "failed", "5.1.1", "hard")]),
}
# words of each first recipient's diagnostic, as the reporting MTA wrote them
DIAGNOSTICS = {
    "rfc3464-failed-two.eml": "550 5.1.1 <alice@example.net>... User unknown",
    "postfix-plain.eml": "User unknown in virtual mailbox table",
    "exim.eml": "550 5.1.1 No such user here",
    "exchange.eml": "RESOLVER.ADR.RecipientNotFound",
    "gmail.eml": "does not exist",
    "gmail-dsn.eml": "554 5.0.0 Message rejected",
    "postfix-delayed.eml": "Connection timed out",
    "exim-delayed.eml": "Greylisted",
}
NOTHING_MORE = [
    "rfc3464-delivered.eml",
    "out-of-office.eml",
    "precedence-autoreply.eml",
    "ordinary-undeliverable.eml",
]
UNSENT = f"send-0006@{DOMAIN}"  # no row: mail another program sent; the bounce is still reported


def wire(name: str) -> bytes:
    """A corpus file as it travels (CRLF line ends)."""
    return (CORPUS / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


async def _sends(bed: Bed, mailbox: Mailbox) -> dict[str, str]:
    """A send of every original in the corpus but :data:`UNSENT`: {Message-ID: send id}."""
    originals = [f"send-{n:04d}@{DOMAIN}" for n in range(1, 14)]
    out = {}
    async with bed.services.database.transaction() as conn:
        for message_id in originals:
            if message_id != UNSENT:
                out[message_id] = await insert_send(
                    conn, tenant_id=bed.tenant_id, mailbox_id=mailbox.id, message_id=message_id
                )
    return out


async def _watched(bed: Bed, orchestrator: Orchestrator, **kw: Any) -> Mailbox:
    mailbox = await bed.add_mailbox(**kw)
    orchestrator.poke()

    async def connected() -> bool:
        watcher = orchestrator.watchers.get(mailbox.id)
        return watcher is not None and watcher.status.state == "connected"

    await wait_for(connected, timeout=10)
    return mailbox


async def _append(bed: Bed, folder: str, raws: list[bytes]) -> None:
    client = await bed.imap()
    try:
        await client.append_many(folder, raws)
    finally:
        await client.logout()


async def _received_count(bed: Bed, mailbox_id: str, count: int, timeout: float = 20) -> list[Event]:
    async def enough() -> list[Event]:
        got = await bed.received(mailbox_id)
        return got if len(got) >= count else []

    found: list[Event] = await wait_for(enough, timeout=timeout)
    return found


async def _reports(bed: Bed, mailbox_id: str) -> list[Event]:
    got = await all_events(bed.services, mailbox_id=mailbox_id)
    return [e for e in got if e.type in ("message.bounced", "message.complaint")]


def _by_subject(received: list[Event]) -> dict[str, Event]:
    return {e.payload["subject"]: e for e in received}


async def test_the_corpus_becomes_linked_bounce_and_complaint_events(bed: Bed, running: Orchestrator) -> None:
    mailbox = await _watched(bed, running)
    sends = await _sends(bed, mailbox)
    names = [*BOUNCES, "arf-abuse.eml", *NOTHING_MORE]
    plain = [make_message("plain mail"), make_message("from a person about postmaster duties")]
    await _append(bed, "INBOX", [wire(n) for n in names] + plain)
    received = await _received_count(bed, mailbox.id, len(names) + len(plain))
    await asyncio.sleep(0.3)  # nothing else arrives later
    log = await all_events(bed.services, mailbox_id=mailbox.id)
    reports = [e for e in log if e.type in ("message.bounced", "message.complaint")]
    assert len(received) == len(names) + len(plain)
    # one report event per bounce and one for the complaint; nothing for the rest
    assert len(reports) == len(BOUNCES) + 1
    received_by_ref = {e.payload["ref"]: e for e in received}
    file_of = dict(zip((e.payload["ref"] for e in received), [*names, "plain", "plain"], strict=True))
    seen: set[str] = set()
    for event in reports:
        name = file_of[event.payload["bounce_ref"]]
        seen.add(name)
        own = received_by_ref[event.payload["bounce_ref"]]
        assert own.seq < event.seq  # right after its own message.received, same transaction
        assert event.payload["bounce_message_id"] == own.payload["message_id"]
        imap = own.payload["source"]["imap"]
        kind = "complaint" if event.type == "message.complaint" else "bounce"
        assert event.idempotency_key == f"{kind}:{mailbox.id}:INBOX:{imap['uidvalidity']}:{imap['uid']}"
        assert event.payload["received_at"]
        if name == "arf-abuse.eml":
            assert event.type == "message.complaint"
            assert event.payload["send_id"] == sends[f"send-0011@{DOMAIN}"]
            assert event.payload["message_id"] == f"send-0011@{DOMAIN}"
            assert event.payload["feedback_type"] == "abuse"
            assert event.payload["user_agent"] == "SomeGenerator/1.0"
            assert event.payload["recipients"] == ["user@example.com", "other@example.com"]
            assert event.payload["source_ip"] == "192.0.2.1"
            continue
        assert event.type == "message.bounced", name
        original, fmt, recipients = BOUNCES[name]
        assert event.payload["message_id"] == original, name
        assert event.payload["send_id"] == (sends.get(original) if original else None), name
        assert event.payload["format"] == fmt, name
        got = [(r["address"], r["action"], r["status"], r["severity"]) for r in event.payload["recipients"]]
        assert got == recipients, name
        if name in DIAGNOSTICS:
            assert DIAGNOSTICS[name] in event.payload["recipients"][0]["diagnostic"], name
        assert all(r["diagnostic"] for r in event.payload["recipients"] if r["status"]), name
    assert seen == {*BOUNCES, "arf-abuse.eml"}
    unsent = next(e for e in reports if e.payload["message_id"] == UNSENT)
    assert unsent.payload["send_id"] is None  # another program's mail: reported, not linked
    rfc = next(e for e in reports if e.payload["message_id"] == f"send-0001@{DOMAIN}")
    assert rfc.payload["reporting_mta"] == "mx.example.com"
    assert _by_subject(received)["plain mail"].payload["subject"] == "plain mail"


async def test_a_cursor_put_back_or_an_epoch_change_appends_no_second_report(bed: Bed) -> None:
    """The chunk is fetched again (a cursor restored from before it, as after a crash with an old
    backup), then the folder is recreated with a new UIDVALIDITY holding the same reports plus a
    new one: each report is reported once."""
    client = await bed.imap()
    await client.create("Bounces")
    await client.logout()
    mailbox = await bed.add_mailbox(folder="Bounces")
    await _sends(bed, mailbox)
    first = ["rfc3464-failed-two.eml", "exim.eml", "arf-abuse.eml"]
    orchestrator = bed.orchestrator()
    await orchestrator.start()
    try:

        async def cursor() -> Cursor | None:
            async with bed.services.database.connect() as conn:
                return await repo.get_cursor(conn, mailbox.id, "Bounces")

        before: Cursor = await wait_for(cursor, timeout=10)  # the first catch-up placed it
        await _append(bed, "Bounces", [wire(n) for n in first])
        await _received_count(bed, mailbox.id, 3)
        await wait_for(lambda: _has(bed, mailbox.id, 3), timeout=10)
    finally:
        await orchestrator.stop()
    reports = await _reports(bed, mailbox.id)
    assert [e.type for e in reports] == ["message.bounced", "message.bounced", "message.complaint"]

    # 1. the cursor goes back to where it was before the reports: the same messages again
    async with bed.services.database.transaction() as conn:
        await repo.save_cursor(conn, mailbox.id, before, now=utc_now())
    orchestrator = bed.orchestrator()
    await orchestrator.start()
    try:

        async def moved_on() -> bool:
            return await cursor() != before

        await wait_for(moved_on, timeout=10)
        await asyncio.sleep(0.5)
    finally:
        await orchestrator.stop()
    assert await _reports(bed, mailbox.id) == reports
    assert len(await bed.received(mailbox.id)) == 3

    # 2. a new epoch: the same reports (recognised as delivered before) plus a new one
    await asyncio.to_thread(bed.dovecot.doveadm, "mailbox", "delete", "-u", bed.user, "Bounces")
    await asyncio.to_thread(bed.dovecot.doveadm, "mailbox", "create", "-u", bed.user, "Bounces")
    for name in [*first, "qmail.eml"]:
        await asyncio.to_thread(bed.dovecot.deliver, bed.user, wire(name), "Bounces")
    orchestrator = bed.orchestrator()
    await orchestrator.start()
    try:
        await wait_for(
            lambda: all_events(bed.services, mailbox_id=mailbox.id, type="mailbox.reset"), timeout=10
        )
        await _received_count(bed, mailbox.id, 4)
        await wait_for(lambda: _has(bed, mailbox.id, 4), timeout=10)
        await asyncio.sleep(0.5)
    finally:
        await orchestrator.stop()
    after = await _reports(bed, mailbox.id)
    assert after[:3] == reports
    assert len(after) == 4
    assert after[3].payload["message_id"] == f"send-0010@{DOMAIN}"
    assert [r["address"] for r in after[3].payload["recipients"]] == ["mona@example.net", "ned@example.net"]
    assert len({e.idempotency_key for e in after}) == 4


async def _has(bed: Bed, mailbox_id: str, count: int) -> bool:
    return len(await _reports(bed, mailbox_id)) >= count


def _dsn_with_original(message_id: str, rcpt: str, attachment_bytes: int) -> bytes:
    """A standard DSN that returns the whole original, attachment and all (Exchange does)."""
    blob = b"QUJD" * (attachment_bytes // 4)
    lines = b"\r\n".join(blob[i : i + 76] for i in range(0, len(blob), 76))
    return (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        b"To: support@example.com\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b"Message-ID: <dsn-big-" + rcpt.encode() + b">\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="R"\r\n\r\n'
        b"--R\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        b"--R\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.com\r\n\r\n"
        b"Final-Recipient: rfc822; " + rcpt.encode() + b"\r\nAction: failed\r\nStatus: 5.2.3\r\n"
        b"Diagnostic-Code: smtp; 552 5.2.3 Message size exceeds fixed maximum message size\r\n\r\n"
        b"--R\r\nContent-Type: message/rfc822\r\n\r\n"
        b"From: support@example.com\r\nTo: " + rcpt.encode() + b"\r\nSubject: the big file\r\n"
        b"Message-ID: <" + message_id.encode() + b">\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="O"\r\n\r\n'
        b"--O\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        b"--O\r\nContent-Type: application/octet-stream; name=big.bin\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + lines + b"\r\n--O--\r\n--R--\r\n"
    )


async def test_bounces_returning_a_big_original_are_classified_off_the_loop(
    bed: Bed, running: Orchestrator
) -> None:
    """One bounce under the 1 MiB parse-in-a-thread size (parsed on the loop, classified in a
    thread) and one over it (both in the thread): both linked."""
    mailbox = await _watched(bed, running)
    async with bed.services.database.transaction() as conn:
        small = await insert_send(
            conn, tenant_id=bed.tenant_id, mailbox_id=mailbox.id, message_id="big-1@example.com"
        )
        large = await insert_send(
            conn, tenant_id=bed.tenant_id, mailbox_id=mailbox.id, message_id="big-2@example.com"
        )
    raws = [
        _dsn_with_original("big-1@example.com", "wendy@example.net", 300_000),
        _dsn_with_original("big-2@example.com", "xavier@example.net", 1_500_000),
    ]
    assert len(raws[0]) < 1024 * 1024 < len(raws[1])
    await _append(bed, "INBOX", raws)
    await _received_count(bed, mailbox.id, 2, timeout=30)
    await wait_for(lambda: _has(bed, mailbox.id, 2), timeout=10)
    got = {e.payload["send_id"]: e.payload for e in await _reports(bed, mailbox.id)}
    assert set(got) == {small, large}
    assert got[small]["recipients"][0]["address"] == "wendy@example.net"
    assert got[large]["recipients"][0]["status"] == "5.2.3"
    assert "exceeds fixed maximum" in got[large]["recipients"][0]["diagnostic"]
