"""Every command of the IMAP client against the Dovecot bed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailport.errors import CommandError, MessageTooLargeError
from mailport.imap import EventKind, ImapClient
from tests.integration.imap.conftest import make_message


async def test_capability_id_enable(imap: ImapClient) -> None:
    assert {"IMAP4REV1", "IDLE", "UIDPLUS", "MOVE"} <= await imap.capability()
    server = await imap.id({"name": "mailport", "version": "0.1"})
    assert server is not None and server["name"] == "Dovecot"
    assert "CONDSTORE" in await imap.enable("CONDSTORE")


async def test_list_with_special_use_and_utf7_names(imap: ImapClient) -> None:
    await imap.create("Entw\u00fcrfe/Alt")
    entries = {e.name: e for e in await imap.list_mailboxes()}
    assert entries["Sent"].special_use == "\\Sent"
    assert entries["Trash"].special_use == "\\Trash"
    assert "Entw\u00fcrfe/Alt" in entries and entries["Entw\u00fcrfe/Alt"].delimiter == "/"
    await imap.append("Entw\u00fcrfe/Alt", make_message("umlaut"))
    assert (await imap.status("Entw\u00fcrfe/Alt"))["MESSAGES"] == 1
    await imap.delete("Entw\u00fcrfe/Alt")


async def test_append_select_examine_status(imap: ImapClient) -> None:
    when = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    first = await imap.append("INBOX", make_message("one"), flags=["\\Seen"], internaldate=when)
    more = await imap.append_many("INBOX", [make_message(f"m{i}") for i in range(3)])
    assert first.uid == 1 and [r.uid for r in more] == [2, 3, 4]
    info = await imap.select("INBOX")
    assert (info.exists, info.uidnext, info.uidvalidity) == (4, 5, first.uidvalidity)
    assert info.highestmodseq is not None and not info.read_only
    assert "\\Seen" in info.permanent_flags
    status = await imap.status("INBOX")
    assert status["MESSAGES"] == 4 and status["UNSEEN"] == 3 and status["HIGHESTMODSEQ"] >= 1
    examined = await imap.examine("INBOX")
    assert examined.read_only and examined.exists == 4
    messages = await imap.fetch([1])
    assert messages[0].internaldate == when


async def test_search_fetch_store_expunge(imap: ImapClient) -> None:
    for i in range(4):
        await imap.append("INBOX", make_message(f"message {i}", body=f"body {i}"))
    await imap.select("INBOX")
    assert await imap.search("ALL") == [1, 2, 3, 4]
    assert await imap.search("UID 3:*") == [3, 4]
    messages = await imap.fetch_since(2)
    assert [m.uid for m in messages] == [2, 3, 4]
    assert all(m.raw and m.size == len(m.raw) and "\\Seen" not in (m.flags or ()) for m in messages)
    assert b"Subject: message 1" in (messages[0].raw or b"")
    headers = await imap.fetch_since(4, headers_only=True)
    assert headers[0].raw is None and (headers[0].headers or b"").endswith(b"\r\n\r\n")
    assert await imap.fetch_since(99) == []

    await imap.store([1, 2], ["\\Seen"])
    assert await imap.search("UNSEEN") == [3, 4]
    updated = await imap.store([2], ["\\Seen"], mode="-", silent=False)
    assert updated[0].uid == 2 and "\\Seen" not in (updated[0].flags or ())
    await imap.store([4], ["\\Deleted"])
    assert await imap.expunge() == [4]
    await imap.store([3], ["\\Deleted"])
    assert await imap.expunge([3]) == [3]
    assert await imap.search("ALL") == [1, 2]


async def test_condstore_changedsince_and_qresync(imap: ImapClient) -> None:
    for i in range(3):
        await imap.append("INBOX", make_message(f"c{i}"))
    info = await imap.select("INBOX")
    assert info.highestmodseq is not None
    modseq = info.highestmodseq
    await imap.store([2], ["\\Flagged"])
    changed = await imap.fetch("1:*", ["UID", "FLAGS"], changedsince=modseq)
    assert [m.uid for m in changed] == [2] and changed[0].modseq
    assert "\\Flagged" in (changed[0].flags or ())
    await imap.store([3], ["\\Deleted"])
    await imap.expunge()
    resync = await imap.select("INBOX", qresync=(info.uidvalidity or 0, modseq))
    assert resync.vanished == [3]
    assert [m.uid for m in resync.changed] == [2] and "\\Flagged" in (resync.changed[0].flags or ())


async def test_move_and_the_copy_fallback(connect, imap: ImapClient) -> None:
    for i in range(3):
        await imap.append("INBOX", make_message(f"mv{i}"))
    await imap.select("INBOX")
    assert await imap.move([1], "Trash") == {1: 1}
    fallback: ImapClient = await connect(ignore_capabilities=["MOVE"])
    assert not fallback.has("MOVE")
    await fallback.select("INBOX")
    assert await fallback.move([2], "Trash") == {2: 2}
    assert await fallback.search("ALL") == [3]
    assert (await fallback.status("Trash"))["MESSAGES"] == 2
    await fallback.logout()


async def test_literal_over_the_maximum_is_reported_and_the_connection_stays_usable(connect) -> None:
    client: ImapClient = await connect(max_literal_size=2000)
    await client.append("INBOX", make_message("small"))
    await client.append("INBOX", make_message("big", body="x" * 10_000))
    await client.select("INBOX")
    with pytest.raises(MessageTooLargeError) as info:
        await client.fetch("1:*")
    assert info.value.details["uid"] == 2
    kept = await client.fetch("1:*", oversize="keep")
    assert kept[0].raw and kept[1].raw is None and (kept[1].oversize or 0) > 10_000
    await client.noop()
    await client.logout()


async def test_a_refused_command_keeps_the_servers_text(imap: ImapClient) -> None:
    with pytest.raises(CommandError) as info:
        await imap.select("No such folder")
    assert "exist" in (info.value.server_said or "").lower()
    assert await imap.is_alive()


async def test_noop_surfaces_new_mail_as_events(imap: ImapClient, dovecot, password_user) -> None:
    await imap.select("INBOX")
    dovecot.deliver(password_user[0], make_message("arrived"))
    await imap.noop()
    kinds = [e.kind for e in imap.events()]
    assert EventKind.EXISTS in kinds


async def test_synchronising_literals_and_appends_without_multiappend(connect) -> None:
    client: ImapClient = await connect(ignore_capabilities=["LITERAL+", "LITERAL-", "MULTIAPPEND"])
    assert not client.has("LITERAL+")
    results = await client.append_many("INBOX", [make_message("s1"), make_message("s2")])
    assert [r.uid for r in results] == [1, 2]
    with pytest.raises(CommandError) as info:  # the server refuses the literal instead of "+ go ahead"
        await client.append("No such folder", make_message("lost"))
    assert info.value.details["response_code"] == "TRYCREATE"
    assert (await client.status("INBOX"))["MESSAGES"] == 2
    await client.logout()
