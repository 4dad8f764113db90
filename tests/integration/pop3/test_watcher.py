"""POP3 mailboxes watched on the real Dovecot: new mail becomes events without loss or
duplicates across polls and a restart, both TLS modes, a wrong password, deletion only after
acceptance (and never by default), and sessions cut mid-RETR or before QUIT."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime

import pytest

from mailport.mailboxes.models import MailboxStatus, Security
from mailport.sync import Orchestrator
from tests.fixtures.scripted_pop3 import POP3Script, scripted_pop3
from tests.integration.pop3.conftest import Pop3Bed, Relay
from tests.integration.sync.conftest import all_events, make_message, wait_for


async def _subjects(bed: Pop3Bed, mailbox_id: str, count: int, timeout: float = 15.0) -> list[str]:
    async def enough() -> list[str] | None:
        got = [e.payload["subject"] for e in await bed.received(mailbox_id)]
        return got if len(got) >= count else None

    return await wait_for(enough, timeout=timeout)


@pytest.mark.parametrize("security", [Security.SSL, Security.STARTTLS])
async def test_new_mail_becomes_events_in_both_tls_modes(pop3_bed: Pop3Bed, security: Security) -> None:
    port = pop3_bed.dovecot.pop3s_port if security is Security.SSL else pop3_bed.dovecot.pop3_port
    mailbox = await pop3_bed.add_mailbox(port=port, security=security)
    async with pop3_bed.watching() as orchestrator:
        await wait_for(lambda: _connected(pop3_bed, mailbox.id))
        await pop3_bed.deliver(make_message("first"))
        await pop3_bed.deliver(make_message("dots", "a line\r\n.\r\n..two dots\r\nend"))
        wake(orchestrator, mailbox.id)
        subjects = await _subjects(pop3_bed, mailbox.id, 2)
        assert sorted(subjects) == ["dots", "first"]
        event = next(e for e in await pop3_bed.received(mailbox.id) if e.payload["subject"] == "dots")
        assert event.payload["connector"] == "pop3"
        assert event.payload["source"]["pop3"]["uidl"]
        assert event.payload["text"].replace("\r\n", "\n").startswith("a line\n.\n..two dots\nend")
    # the default after-processing leaves the mail on the server
    assert sorted(await pop3_bed.on_server()) == ["dots", "first"]


def wake(orchestrator: Orchestrator, mailbox_id: str) -> None:
    """Poll now (the check interval is a minute)."""
    orchestrator.watchers[mailbox_id].wake()


async def _in_error(bed: Pop3Bed, mailbox_id: str) -> bool:
    mailbox = await bed.services.mailboxes.get(bed.tenant_id, mailbox_id)
    return mailbox.health.status is MailboxStatus.ERROR


async def _connected(bed: Pop3Bed, mailbox_id: str) -> bool:
    mailbox = await bed.services.mailboxes.get(bed.tenant_id, mailbox_id)
    return mailbox.health.status is MailboxStatus.CONNECTED


async def test_no_loss_or_duplicate_across_polls_and_a_restart(pop3_bed: Pop3Bed) -> None:
    dated = b"Date: Mon, 02 Jan 2023 10:00:00 +0000\r\nSubject:"
    old = make_message("before the mailbox").replace(b"Subject:", dated)
    await pop3_bed.deliver(old)  # arrived before the mailbox was made: not delivered
    mailbox = await pop3_bed.add_mailbox()
    async with pop3_bed.watching() as orchestrator:
        await wait_for(lambda: _connected(pop3_bed, mailbox.id))
        for n in range(3):
            await pop3_bed.deliver(make_message(f"poll {n}"))
            wake(orchestrator, mailbox.id)
            await _subjects(pop3_bed, mailbox.id, n + 1)
        wake(orchestrator, mailbox.id)  # one more poll that finds nothing new
        await pop3_bed.deliver(make_message("while running"))
    await pop3_bed.deliver(make_message("while stopped"))
    async with pop3_bed.watching() as again:
        subjects = await _subjects(pop3_bed, mailbox.id, 5)
        wake(again, mailbox.id)
        await _subjects(pop3_bed, mailbox.id, 5)
    subjects = [e.payload["subject"] for e in await pop3_bed.received(mailbox.id)]
    assert sorted(subjects) == ["poll 0", "poll 1", "poll 2", "while running", "while stopped"]


async def test_wrong_password_is_a_clear_error_on_the_mailbox(pop3_bed: Pop3Bed) -> None:
    mailbox = await pop3_bed.add_mailbox(password="not-the-password")
    async with pop3_bed.watching():
        await wait_for(lambda: _in_error(pop3_bed, mailbox.id))
    got = await pop3_bed.services.mailboxes.get(pop3_bed.tenant_id, mailbox.id)
    assert got.health.last_error is not None
    assert got.health.last_error.startswith("[invalid_credentials]")
    assert "Authentication failed" in got.health.last_error  # the server's own words
    errors = await all_events(pop3_bed.services, mailbox_id=mailbox.id, type="mailbox.error")
    assert [e.payload["error"] for e in errors] == ["invalid_credentials"]
    assert "not-the-password" not in repr(errors)


async def test_delete_only_after_acceptance(pop3_bed: Pop3Bed) -> None:
    mailbox = await pop3_bed.add_mailbox(after_processing="delete")
    async with pop3_bed.watching() as orchestrator:
        await wait_for(lambda: _connected(pop3_bed, mailbox.id))
        await pop3_bed.deliver(make_message("keep until accepted"))
        await pop3_bed.deliver(make_message("accepted one"))
        wake(orchestrator, mailbox.id)
        await _subjects(pop3_bed, mailbox.id, 2)
        wake(orchestrator, mailbox.id)  # polls run; nothing is accepted yet
        await _subjects(pop3_bed, mailbox.id, 2)
        assert sorted(await pop3_bed.on_server()) == ["accepted one", "keep until accepted"]
        received = await pop3_bed.received(mailbox.id)
        accepted = next(e for e in received if e.payload["subject"] == "accepted one")
        await pop3_bed.services.events.mark_accepted(accepted.id)
        wake(orchestrator, mailbox.id)

        async def deleted() -> bool:
            return await pop3_bed.on_server() == ["keep until accepted"]

        await wait_for(deleted)
        wake(orchestrator, mailbox.id)
    assert len(await pop3_bed.received(mailbox.id)) == 2


async def test_session_cut_mid_retr_loses_and_repeats_nothing(pop3_bed: Pop3Bed, relay: Relay) -> None:
    mailbox = await pop3_bed.add_mailbox(port=relay.port, security=Security.NONE)
    async with pop3_bed.watching() as orchestrator:
        await wait_for(lambda: _connected(pop3_bed, mailbox.id))
        await pop3_bed.deliver(make_message("small"))
        await pop3_bed.deliver(make_message("big", "x" * 200_000))
        relay.cut_after_bytes = 60_000  # of the next session: in the middle of the big RETR
        wake(orchestrator, mailbox.id)
        subjects = await _subjects(pop3_bed, mailbox.id, 2, timeout=20)
        assert relay.cuts == 1
        wake(orchestrator, mailbox.id)
        await _subjects(pop3_bed, mailbox.id, 2)
    subjects = [e.payload["subject"] for e in await pop3_bed.received(mailbox.id)]
    assert sorted(subjects) == ["big", "small"]


async def test_session_cut_before_quit_deletes_in_the_next_session(pop3_bed: Pop3Bed, relay: Relay) -> None:
    mailbox = await pop3_bed.add_mailbox(port=relay.port, security=Security.NONE, after_processing="delete")
    async with pop3_bed.watching() as orchestrator:
        await wait_for(lambda: _connected(pop3_bed, mailbox.id))
        await pop3_bed.deliver(make_message("to delete"))
        wake(orchestrator, mailbox.id)
        (event,) = await wait_for(lambda: pop3_bed.received(mailbox.id))
        relay.cut_before.append(b"QUIT")  # the DELE goes through, its QUIT never arrives
        await pop3_bed.services.events.mark_accepted(event.id)
        wake(orchestrator, mailbox.id)
        await wait_for(lambda: _cut(relay))

        async def gone() -> bool:
            return await pop3_bed.on_server() == []

        await wait_for(gone, timeout=15)
    assert [e.payload["subject"] for e in await pop3_bed.received(mailbox.id)] == ["to delete"]


async def _cut(relay: Relay) -> bool:
    return relay.cuts >= 1


async def test_a_server_without_uidl_is_a_clear_error(pop3_bed: Pop3Bed) -> None:
    script = POP3Script(uidl=False, messages=[make_message("never read")])
    async with scripted_pop3(script) as port:
        mailbox = await pop3_bed.add_mailbox(port=port, security=Security.NONE)
        async with pop3_bed.watching():
            await wait_for(lambda: _in_error(pop3_bed, mailbox.id))
    got = await pop3_bed.services.mailboxes.get(pop3_bed.tenant_id, mailbox.id)
    assert got.health.last_error is not None and got.health.last_error.startswith("[uidl_unsupported]")
    assert not any(c.startswith("RETR") for c in script.commands)
    assert [c for c in script.commands if c == "UIDL"] == ["UIDL"]  # not retried in a loop


async def test_the_first_poll_delivers_only_mail_that_arrived_since_the_mailbox_was_made(
    pop3_bed: Pop3Bed,
) -> None:
    old = b"Date: Mon, 02 Jan 2023 10:00:00 +0000\r\n" + make_message("from 2023")
    await pop3_bed.deliver(old)
    mailbox = await pop3_bed.add_mailbox()
    now = email.utils.format_datetime(datetime.now(UTC))
    received = f"Received: from mx by mail.example.test; {now}\r\n".encode()
    await pop3_bed.deliver(received + make_message("new"))
    async with pop3_bed.watching() as orchestrator:
        assert await _subjects(pop3_bed, mailbox.id, 1) == ["new"]
        wake(orchestrator, mailbox.id)
        await pop3_bed.deliver(make_message("later"))
        wake(orchestrator, mailbox.id)
        await _subjects(pop3_bed, mailbox.id, 2)
    assert [e.payload["subject"] for e in await pop3_bed.received(mailbox.id)] == ["new", "later"]


async def test_the_first_poll_delivers_every_new_message_however_many(pop3_bed: Pop3Bed) -> None:
    """More new mail than any cap on the header blocks read for the first cursor: none of it is
    taken as seen (a watcher that starts late must not lose the mail that arrived meanwhile)."""
    old = b"Date: Mon, 02 Jan 2023 10:00:00 +0000\r\n" + make_message("from 2023")
    await pop3_bed.deliver(old)
    mailbox = await pop3_bed.add_mailbox()
    now = email.utils.format_datetime(datetime.now(UTC))
    received = f"Received: from mx by mail.example.test; {now}\r\n".encode()
    for n in range(130):
        await pop3_bed.deliver(received + make_message(f"new {n}"))
    async with pop3_bed.watching():
        await wait_for(lambda: _received_count(pop3_bed, mailbox.id, 130), timeout=60)
    subjects = [e.payload["subject"] for e in await pop3_bed.received(mailbox.id)]
    assert subjects == [f"new {n}" for n in range(130)]


async def test_a_server_without_top_still_delivers(pop3_bed: Pop3Bed) -> None:
    """TOP is optional (RFC 1939): the first poll then takes what is there as old, and a message
    over the size limit is delivered as oversized without its header fields."""
    script = POP3Script(capa=["USER", "UIDL"], messages=[make_message("old")])
    async with scripted_pop3(script) as port:
        mailbox = await pop3_bed.add_mailbox(port=port, security=Security.NONE)
        async with pop3_bed.watching() as orchestrator:
            await wait_for(lambda: _connected(pop3_bed, mailbox.id))
            script.messages.append(make_message("new"))
            script.messages.append(make_message("huge", "x" * 30_000_000))
            wake(orchestrator, mailbox.id)
            await wait_for(lambda: _received_count(pop3_bed, mailbox.id, 2), timeout=30)
    received = await pop3_bed.received(mailbox.id)
    assert [e.payload["oversized"] for e in received] == [False, True]
    assert received[0].payload["subject"] == "new"
    assert "TOP 1 0" in script.commands  # asked once for the baseline, refused


async def _received_count(bed: Pop3Bed, mailbox_id: str, count: int) -> bool:
    return len(await bed.received(mailbox_id)) >= count
