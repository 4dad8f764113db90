"""IMAP's own cases of ``header_blocks``: what the command looks like on the wire (EXAMINE, one
``UID SEARCH SINCE`` a day early, ``BODY.PEEK[HEADER.FIELDS …]``), a server that sends no
INTERNALDATE, ``NO [EXPUNGEISSUED]``, and against Dovecot a message expunged by another session
between the SEARCH and its FETCH and a folder recreated while the connection was lent elsewhere."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from mailport.connectors.base import HeaderBlock
from mailport.connectors.imap import ImapConnector
from mailport.connectors.mail import ListQuery
from mailport.imap import ImapClient
from mailport.imap.arguments import mailbox_arg
from tests.connectors.mailbed import make_mailbox
from tests.connectors.test_header_blocks import FIELDS, SINCE, mail
from tests.fixtures.imap import ScriptedConnection, ScriptedImapServer, answer_login
from tests.mailstack.dovecot import Dovecot

HEADERS = b"From: Ann <ann@example.test>\r\nTo: bob@example.test\r\n\r\n"
SELECTED = b"* 3 EXISTS\r\n* OK [UIDVALIDITY 11] UIDs valid\r\n* OK [UIDNEXT 9] next\r\n"


def fetched(seq: int, uid: int, *, date: bytes | None) -> bytes:
    when = b'INTERNALDATE "%s" ' % date if date is not None else b""
    return (
        b"* %d FETCH (UID %d %sBODY[HEADER.FIELDS (CC FROM MESSAGE-ID TO)] {%d}\r\n"
        % (seq, uid, when, len(HEADERS))
        + HEADERS
        + b")\r\n"
    )


async def test_the_commands_on_the_wire_and_a_server_without_internaldate_or_with_expungeissued() -> None:
    fetches = 0

    async def script(conn: ScriptedConnection) -> None:
        nonlocal fetches
        await answer_login(conn)
        while True:
            tag, verb, line = await conn.read_command()
            reply, status = b"", b" OK done\r\n"
            if verb == b"LOGOUT":
                await conn.send(b"* BYE bye\r\n" + tag + b" OK done\r\n")
                return
            if verb in (b"EXAMINE", b"SELECT"):
                reply = SELECTED
            elif verb == b"UID SEARCH":
                reply = b"* SEARCH 8 3 5\r\n"
            elif verb == b"UID FETCH":
                fetches += 1
                if fetches == 1:  # UIDs 3 and 5: 5 vanished meanwhile; 3 has no INTERNALDATE
                    reply, status = fetched(1, 3, date=None), b" NO [EXPUNGEISSUED] Some expunged\r\n"
                elif fetches == 2:  # again after the NOOP
                    reply = b"* 2 EXPUNGE\r\n" + fetched(1, 3, date=None)
                else:  # 8: one before the instant, by a minute
                    reply = fetched(2, 8, date=b"10-Mar-2024 11:59:00 +0000")
            await conn.send(reply + tag + status)

    async with ScriptedImapServer(script) as server:
        connector = ImapConnector(make_mailbox("imap", "ann@example.test", "pw", server.port))
        await connector.connect()
        try:
            chunks = [c async for c in connector.header_blocks("Größe", since=SINCE, fields=FIELDS, chunk=2)]
        finally:
            await connector.disconnect()
    assert not server.errors
    assert chunks == [[HeaderBlock("3", None, HEADERS)]]
    wire = [line.split(b" ", 1)[1] for line in server.commands[1:]]
    folder = mailbox_arg("Größe")
    assert isinstance(folder, bytes)
    assert wire[:6] == [
        b"EXAMINE " + folder,
        b"UID SEARCH SINCE 9-Mar-2024",  # a day early: SEARCH dates ignore time and zone
        b"UID FETCH 3,5 (UID INTERNALDATE BODY.PEEK[HEADER.FIELDS (CC FROM MESSAGE-ID TO)])",
        b"NOOP",
        b"UID FETCH 3,5 (UID INTERNALDATE BODY.PEEK[HEADER.FIELDS (CC FROM MESSAGE-ID TO)])",
        b"UID FETCH 8 (UID INTERNALDATE BODY.PEEK[HEADER.FIELDS (CC FROM MESSAGE-ID TO)])",
    ]


@pytest.fixture
async def dove(dovecot: Dovecot) -> AsyncIterator[tuple[ImapConnector, ImapClient]]:
    user, password = dovecot.dyn_user(f"h{uuid.uuid4().hex[:10]}")
    connector = ImapConnector(make_mailbox("imap", user, password, dovecot.imap_port))
    other = await dovecot.client(user, password)
    await connector.connect()
    try:
        yield connector, other
    finally:
        await connector.disconnect()
        await other.logout()


async def started(
    dove: tuple[ImapConnector, ImapClient], count: int, chunk: int
) -> tuple[ImapClient, AsyncIterator[list[HeaderBlock]], list[HeaderBlock]]:
    """A folder "Harvest" with ``count`` messages an hour apart from the instant on, and a
    harvest of it that has yielded its first chunk."""
    connector, other = dove
    await other.create("Harvest")
    for n in range(count):
        await other.append("Harvest", mail(n), internaldate=SINCE + timedelta(hours=n))
    blocks = connector.header_blocks("Harvest", since=SINCE, fields=FIELDS, chunk=chunk)
    return other, blocks, await anext(blocks)


async def test_a_message_expunged_between_search_and_fetch_is_left_out(
    dove: tuple[ImapConnector, ImapClient],
) -> None:
    other, blocks, first = await started(dove, 4, 1)
    await other.select("Harvest")
    await other.store([2, 3], ["\\Deleted"], mode="+")
    await other.expunge([2, 3])
    rest = [b.item for chunk in [c async for c in blocks] for b in chunk]
    # Dovecot may still answer for a message this session has not been told is gone (RFC 3501
    # 7.4.1 lets it); whatever it no longer has is simply missing, and the rest comes
    assert [b.item for b in first] == ["1"] and rest[-1] == "4"
    assert set(rest) <= {"2", "3", "4"} and len(rest) < 3


async def test_a_folder_recreated_while_the_connection_was_lent_is_searched_again(
    dove: tuple[ImapConnector, ImapClient],
) -> None:
    other, blocks, first = await started(dove, 3, 2)
    await dove[0].list_messages(ListQuery(folder="INBOX"))  # lent to another request
    await other.delete("Harvest")
    await other.create("Harvest")
    await other.append("Harvest", mail(7), internaldate=datetime(2025, 1, 1, tzinfo=UTC))
    rest = [b for chunk in [c async for c in blocks] for b in chunk]
    assert len(first) == 2
    assert [b"<m7@example.test>" in b.block for b in rest] == [True]  # the new epoch, whole
