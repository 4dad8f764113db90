"""The IMAP client's own Dovecot tests (tests/integration/imap/), the ones covering what a
watcher sends, run against Dovecot and the simulator alike (plain IMAP on loopback)."""

from __future__ import annotations

import asyncio

import pytest

from mailport.crypto import Secret
from mailport.errors import CommandError
from mailport.imap import EventKind, PasswordAuth, ServerEvent
from tests.integration.imap.conftest import make_message
from tests.integration.imapsim.conftest import MailServer


async def test_login_and_authenticate_plain_with_and_without_sasl_ir(mail_server: MailServer) -> None:
    login = await mail_server.client(
        auth=PasswordAuth(mail_server.user, Secret(mail_server.password), mechanism="LOGIN")
    )
    assert {"IMAP4REV1", "IDLE", "UIDPLUS"} <= login.capabilities
    await login.logout()
    for ignored in ([], ["SASL-IR"]):
        client = await mail_server.client(
            ignore_capabilities=ignored,
            auth=PasswordAuth(mail_server.user, Secret(mail_server.password), mechanism="PLAIN"),
        )
        assert (await client.status("INBOX"))["MESSAGES"] == 0
        await client.logout()


async def test_idle_sees_deliveries_then_fetches_them(mail_server: MailServer) -> None:
    imap = await mail_server.client()
    await imap.select("INBOX")
    async with imap.idle():
        assert await imap.idle_wait(0.3) == []
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, mail_server.deliver, make_message("pushed"))
        events = await imap.idle_wait(10)
        assert any(e.kind is EventKind.EXISTS and e.number == 1 for e in events)
    fetched = await imap.fetch_since(1)
    assert b"Subject: pushed" in (fetched[0].raw or b"")
    await imap.logout()


async def test_events_go_to_a_callback_when_given(mail_server: MailServer) -> None:
    seen: list[ServerEvent] = []
    client = await mail_server.client(on_event=seen.append)
    await client.select("INBOX")
    await client.idle_start()
    await asyncio.to_thread(mail_server.deliver, make_message("cb"))
    await client.idle_wait(10)
    await client.idle_done()
    assert any(e.kind is EventKind.EXISTS for e in seen)
    assert await client.is_alive()
    await client.logout()


async def test_select_examine_status(mail_server: MailServer) -> None:
    for i in range(4):
        await asyncio.to_thread(mail_server.deliver, make_message(f"m{i}"))
    imap = await mail_server.client()
    info = await imap.select("INBOX")
    assert (info.exists, info.uidnext) == (4, 5) and info.uidvalidity and not info.read_only
    assert "\\Seen" in info.permanent_flags and "\\Seen" in info.flags
    status = await imap.status("INBOX", ["MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN"])
    assert status == {"MESSAGES": 4, "UIDNEXT": 5, "UIDVALIDITY": info.uidvalidity, "UNSEEN": 4}
    examined = await imap.examine("INBOX")
    assert examined.read_only and examined.exists == 4
    await imap.logout()


async def test_search_fetch_and_store(mail_server: MailServer) -> None:
    for i in range(4):
        await asyncio.to_thread(mail_server.deliver, make_message(f"message {i}", body=f"body {i}"))
    imap = await mail_server.client()
    await imap.select("INBOX")
    assert await imap.search("ALL") == [1, 2, 3, 4]
    assert await imap.search("UID 3:*") == [3, 4]
    assert await imap.search("UID 9:*") == [4]  # n:* matches the last message (RFC 3501)
    messages = await imap.fetch_since(2)
    assert [m.uid for m in messages] == [2, 3, 4]
    assert all(m.raw and m.size == len(m.raw) and "\\Seen" not in (m.flags or ()) for m in messages)
    assert all(m.internaldate is not None for m in messages)
    assert b"Subject: message 1" in (messages[0].raw or b"")
    headers = await imap.fetch_since(4, headers_only=True)
    assert headers[0].raw is None and (headers[0].headers or b"").endswith(b"\r\n\r\n")
    await imap.store([2], ["\\Seen"])
    assert await imap.search("UNSEEN") == [1, 3, 4]
    flags = await imap.fetch("1:4", ("UID", "FLAGS"))
    assert [("\\Seen" in (m.flags or ())) for m in flags] == [False, True, False, False]
    await imap.logout()


async def test_noop_surfaces_new_mail_as_events(mail_server: MailServer) -> None:
    imap = await mail_server.client()
    await imap.select("INBOX")
    await asyncio.to_thread(mail_server.deliver, make_message("arrived"))
    await imap.noop()
    assert EventKind.EXISTS in [e.kind for e in imap.events()]
    await imap.logout()


async def test_a_refused_command_keeps_the_servers_text(mail_server: MailServer) -> None:
    imap = await mail_server.client()
    with pytest.raises(CommandError) as info:
        await imap.select("No such folder")
    assert "exist" in (info.value.server_said or "").lower()
    assert await imap.is_alive()
    await imap.logout()


async def test_synchronising_literals(mail_server: MailServer) -> None:
    client = await mail_server.client(ignore_capabilities=["LITERAL+", "LITERAL-", "MULTIAPPEND"])
    assert not client.has("LITERAL+")
    results = await client.append_many("INBOX", [make_message("s1"), make_message("s2")])
    assert [r.uid for r in results] == [1, 2]
    with pytest.raises(CommandError):  # the server refuses the literal instead of "+ go ahead"
        await client.append("No such folder", make_message("lost"))
    assert await client.is_alive()
    await client.logout()
