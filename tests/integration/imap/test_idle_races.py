"""New mail announced at the awkward moments of a watch, over a scripted server (a real one
cannot be made to speak at an exact point): an EXISTS that arrives while the catch-up runs, in
IDLE's first response (before its ``+``), or while DONE is ending IDLE must still wake the
watcher at once as NEW_MAIL, never wait for the next renewal. A server says EXISTS once; the
client must keep it until the watch asks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from mailport.connectors.base import ChangeKind, Cursor
from mailport.connectors.imap import ImapConnector
from tests.connectors.mailbed import make_mailbox
from tests.fixtures.imap import ScriptedConnection, ScriptedImapServer, answer_login

SELECTED = b"* 0 EXISTS\r\n* OK [UIDVALIDITY 5] UIDs valid\r\n* OK [UIDNEXT 1] next\r\n"
NEW = b"* 1 EXISTS\r\n* 1 RECENT\r\n"
RENEWAL = 600.0  # far beyond the test's deadline: only the EXISTS can end the wait in time


def scripted(moment: str, idles: list[bytes]) -> Callable[[ScriptedConnection], object]:
    """A server whose single new message is announced once, at ``moment``: ``search`` (an
    unsolicited EXISTS before the catch-up's UID SEARCH completes, its result computed before
    the message arrived), ``idle-first`` (before IDLE's continuation), ``done`` (between DONE
    and IDLE's tagged OK)."""

    async def script(conn: ScriptedConnection) -> None:
        await answer_login(conn)
        told = False
        while True:
            tag, verb, _ = await conn.read_command()
            idles.append(verb)
            if verb == b"LOGOUT":
                await conn.send(b"* BYE bye\r\n" + tag + b" OK done\r\n")
                return
            if verb == b"SELECT":
                await conn.send(SELECTED + tag + b" OK [READ-WRITE] selected\r\n")
            elif verb == b"UID SEARCH":
                extra = b"" if told or moment != "search" else NEW
                told = told or moment == "search"
                await conn.send(b"* SEARCH\r\n" + extra + tag + b" OK done\r\n")
            elif verb == b"IDLE":
                if moment == "idle-first" and not told:
                    told = True
                    await conn.send(NEW)
                await conn.send(b"+ idling\r\n")
                done = await conn.read_line()
                assert done.upper() == b"DONE", done
                if moment == "done" and not told:
                    told = True
                    await conn.send(NEW)
                await conn.send(tag + b" OK IDLE terminated\r\n")
            else:
                await conn.send(tag + b" OK done\r\n")

    return script


@pytest.mark.parametrize("moment", ["search", "idle-first", "done"])
async def test_exists_at_an_awkward_moment_wakes_the_watch_at_once(moment: str) -> None:
    seen: list[bytes] = []
    async with ScriptedImapServer(scripted(moment, seen)) as server:
        connector = ImapConnector(
            make_mailbox("imap", "ann@scripted.test", "pw", server.port), idle_renew_seconds=RENEWAL
        )
        await connector.connect()
        try:
            state = await connector.open("INBOX")
            # the watcher's catch-up: nothing yet (the message arrives as the search completes)
            batches = [b async for b in connector.fetch_since(Cursor("INBOX", state.epoch, "0"))]
            assert [m for b in batches for m in b.messages] == []
            changes = connector.watch(interval=RENEWAL)
            if moment == "done":  # a wake-up ends IDLE; the EXISTS comes with its end
                connector.wake()
                first = await asyncio.wait_for(anext(changes), 5)
                assert first.kind is ChangeKind.TICK
            change = await asyncio.wait_for(anext(changes), 5)
            assert change.kind is ChangeKind.NEW_MAIL
            await changes.aclose()
        finally:
            await connector.disconnect()
    assert not server.errors
    assert b"IDLE" in seen
