"""New mail on an idling mailbox is fetched with ``UID FETCH n:*`` and no UID SEARCH when the
connection's EXISTS count shows a few new messages; a backlog, an unknown count or a count that
broke the rules falls back to UID SEARCH and pages of ``chunk``.

A scripted server (the cases a real server will not produce on demand: ``n:*`` answered with
the last, older message, a message expunged between its EXISTS and the FETCH, unsolicited FLAGS
updates, EXISTS counts that lie) and the real Dovecot (through a relay that records the commands)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from mailport.connectors.base import Batch, Change, ChangeKind, Cursor
from mailport.connectors.imap import ImapConnector
from tests.connectors.mailbed import make_mailbox
from tests.fixtures.imap import Script, ScriptedConnection, ScriptedImapServer, answer_login
from tests.fixtures.relay import TcpRelay
from tests.integration.imap.conftest import make_message
from tests.mailstack.dovecot import Dovecot

RENEWAL = 600.0


@dataclass
class Folder:
    """The scripted server's one folder: its UIDs, what it says at the next IDLE, and what it
    says before answering the next UID FETCH."""

    uids: list[int]
    at_idle: list[bytes] = field(default_factory=list)
    before_fetch: list[bytes] = field(default_factory=list)

    def matching(self, spec: bytes) -> list[int]:
        """The UIDs a UID set names; ``n:*`` beyond the last UID names the last (RFC 3501 6.4.8)."""
        found: set[int] = set()
        for part in spec.split(b","):
            lo, _, hi = part.partition(b":")
            if hi == b"*":
                found.update(u for u in self.uids if u >= int(lo))
                if not any(u >= int(lo) for u in self.uids) and self.uids:
                    found.add(self.uids[-1])
            elif hi:
                found.update(u for u in self.uids if int(lo) <= u <= int(hi))
            elif int(lo) in self.uids:
                found.add(int(lo))
        return sorted(found)

    def fetched(self, uid: int) -> bytes:
        body = make_message(f"message {uid}")
        seq = self.uids.index(uid) + 1
        return (
            b'* %d FETCH (UID %d FLAGS () INTERNALDATE "06-Dec-2026 06:00:00 +0000" RFC822.SIZE %d '
            b"BODY[] {%d}\r\n" % (seq, uid, len(body), len(body)) + body + b")\r\n"
        )


def serve(folder: Folder) -> Script:
    async def script(conn: ScriptedConnection) -> None:
        await answer_login(conn)
        while True:
            tag, verb, line = await conn.read_command()
            words = line.split()
            if verb == b"LOGOUT":
                await conn.send(b"* BYE bye\r\n" + tag + b" OK done\r\n")
                return
            if verb == b"SELECT":
                await conn.send(
                    b"* %d EXISTS\r\n* OK [UIDVALIDITY 5] ok\r\n* OK [UIDNEXT %d] ok\r\n"
                    % (len(folder.uids), max(folder.uids, default=0) + 1)
                    + tag
                    + b" OK [READ-WRITE] selected\r\n"
                )
            elif verb == b"UID SEARCH":  # "UID n:*"
                found = folder.matching(words[4])
                await conn.send(
                    b"* SEARCH " + b" ".join(b"%d" % u for u in found) + b"\r\n" + tag + b" OK\r\n"
                )
            elif verb == b"UID FETCH":
                said, folder.before_fetch = b"".join(folder.before_fetch), []
                answer = b"".join(folder.fetched(uid) for uid in folder.matching(words[3]))
                await conn.send(said + answer + tag + b" OK done\r\n")
            elif verb == b"IDLE":
                said, folder.at_idle = b"".join(folder.at_idle), []
                await conn.send(b"+ idling\r\n" + said)
                assert (await conn.read_line()).upper() == b"DONE"
                await conn.send(tag + b" OK IDLE terminated\r\n")
            else:
                await conn.send(tag + b" OK done\r\n")

    return script


async def _uid_commands(server: ScriptedImapServer) -> list[bytes]:
    return [b" ".join(line.split()[1:4]) for line in server.commands if line.split()[1:2] == [b"UID"]]


async def _new_mail(changes: AsyncIterator[Change]) -> None:
    change = await asyncio.wait_for(anext(changes), 5)
    assert change.kind is ChangeKind.NEW_MAIL


async def _all(connector: ImapConnector, cursor: Cursor, *, chunk: int = 200) -> list[Batch]:
    return [batch async for batch in connector.fetch_since(cursor, chunk=chunk)]


@asynccontextmanager
async def _scripted(folder: Folder) -> AsyncIterator[tuple[ScriptedImapServer, ImapConnector]]:
    """A scripted server serving ``folder`` and a connector logged in to it."""
    async with ScriptedImapServer(serve(folder)) as server:
        connector = ImapConnector(
            make_mailbox("imap", "ann@scripted.test", "pw", server.port), idle_renew_seconds=RENEWAL
        )
        await connector.connect()
        try:
            yield server, connector
        finally:
            await connector.disconnect()


def _items(batches: list[Batch]) -> list[int]:
    return [int(m.item) for b in batches for m in b.messages]


async def test_a_few_new_messages_are_fetched_without_a_search() -> None:
    """The last, older message answering ``3:*`` (the new one expunged meanwhile) and the
    unsolicited FLAGS updates are no new mail; the next message comes by ``3:*`` again."""
    folder = Folder([1, 2])
    async with _scripted(folder) as (server, connector):
        state = await connector.open("INBOX")
        first = await _all(connector, Cursor("INBOX", state.epoch, "0"))
        assert _items(first) == [1, 2] and first[-1].cursor.position == "2"
        changes = connector.watch(interval=RENEWAL)

        folder.uids.append(3)
        folder.at_idle = [b"* 3 EXISTS\r\n"]
        await _new_mail(changes)
        folder.uids.remove(3)  # expunged before the FETCH: "3:*" answers UID 2
        folder.before_fetch = [b"* 3 EXPUNGE\r\n", b"* 1 FETCH (FLAGS (\\Seen))\r\n"]
        assert await _all(connector, first[-1].cursor) == []

        folder.uids.append(4)
        folder.at_idle = [b"* 3 EXISTS\r\n"]
        await _new_mail(changes)
        folder.before_fetch = [b"* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n"]
        batches = await _all(connector, first[-1].cursor)
        assert _items(batches) == [4] and batches[-1].cursor == Cursor("INBOX", state.epoch, "4")
        await changes.aclose()
    assert not server.errors
    assert await _uid_commands(server) == [
        b"UID SEARCH UID",
        b"UID FETCH 1:2",
        b"UID FETCH 3:*",
        b"UID FETCH 3:*",
    ]


async def test_more_messages_than_counted_are_all_kept_then_searched_for() -> None:
    """A server whose EXISTS said one new message while three came: all three are yielded in
    pages of ``chunk``; the connection searches from then on."""
    folder = Folder([1])
    async with _scripted(folder) as (server, connector):
        state = await connector.open("INBOX")
        cursor = (await _all(connector, Cursor("INBOX", state.epoch, "0")))[-1].cursor
        changes = connector.watch(interval=RENEWAL)
        folder.uids += [2, 3, 4]
        folder.at_idle = [b"* 2 EXISTS\r\n"]
        await _new_mail(changes)
        batches = await _all(connector, cursor, chunk=2)
        assert [_items([b]) for b in batches] == [[2, 3], [4]]
        assert [b.cursor.position for b in batches] == ["3", "4"]

        folder.uids.append(5)
        folder.at_idle = [b"* 5 EXISTS\r\n"]
        await _new_mail(changes)
        assert _items(await _all(connector, batches[-1].cursor, chunk=2)) == [5]
        await changes.aclose()
    assert not server.errors
    assert await _uid_commands(server) == [
        b"UID SEARCH UID",
        b"UID FETCH 1",
        b"UID FETCH 2:*",
        b"UID SEARCH UID",
        b"UID FETCH 5",
    ]


async def test_a_count_that_shrank_without_expunge_is_not_trusted() -> None:
    folder = Folder([1, 2, 3])
    async with _scripted(folder) as (server, connector):
        state = await connector.open("INBOX")
        cursor = (await _all(connector, Cursor("INBOX", state.epoch, "0")))[-1].cursor
        changes = connector.watch(interval=RENEWAL)
        folder.uids.append(4)
        folder.at_idle = [b"* 2 EXISTS\r\n* 4 EXISTS\r\n"]
        await _new_mail(changes)
        assert _items(await _all(connector, cursor)) == [4]
        await changes.aclose()
    assert not server.errors
    assert await _uid_commands(server) == [
        b"UID SEARCH UID",
        b"UID FETCH 1:3",
        b"UID SEARCH UID",
        b"UID FETCH 4",
    ]


async def test_a_cursor_other_than_where_the_last_call_ended_searches() -> None:
    """A page the caller did not commit (the cursor it passes is older): no bound is known."""
    folder = Folder([1, 2, 3])
    async with _scripted(folder) as (server, connector):
        state = await connector.open("INBOX")
        start = Cursor("INBOX", state.epoch, "0")
        assert _items(await _all(connector, start)) == [1, 2, 3]
        changes = connector.watch(interval=RENEWAL)
        folder.uids.append(4)
        folder.at_idle = [b"* 4 EXISTS\r\n"]
        await _new_mail(changes)
        assert _items(await _all(connector, start)) == [1, 2, 3, 4]
        await changes.aclose()
    assert not server.errors
    assert [c for c in await _uid_commands(server) if c.startswith(b"UID SEARCH")] == [b"UID SEARCH UID"] * 2


# ---------------------------------------------------------------------- the real Dovecot


def _sent(relay: TcpRelay, since: int = 0) -> list[bytes]:
    """The UID commands the connector sent (verb and UID set) after byte ``since``."""
    lines = bytes(relay.sent[since:]).split(b"\r\n")
    return [b" ".join(line.split()[1:4]) for line in lines if line.split()[1:2] == [b"UID"]]


@dataclass
class Watched:
    connector: ImapConnector
    changes: AsyncIterator[Change]
    cursor: Cursor
    relay: TcpRelay

    async def next_round(self, *, chunk: int = 200) -> tuple[list[Batch], list[bytes]]:
        """Wait for NEW_MAIL, fetch as the watcher does; the batches and the UID commands sent."""
        await _new_mail_within(self.changes, 10)
        since = len(self.relay.sent)
        batches = await _all(self.connector, self.cursor, chunk=chunk)
        for batch in batches:
            assert int(batch.cursor.position) > int(self.cursor.position)
            self.cursor = batch.cursor
        return batches, _sent(self.relay, since)


async def _new_mail_within(changes: AsyncIterator[Change], seconds: float) -> None:
    change = await asyncio.wait_for(anext(changes), seconds)
    assert change.kind is ChangeKind.NEW_MAIL, change


async def _watched(dovecot: Dovecot, user: str, password: str, relay: TcpRelay) -> Watched:
    connector = ImapConnector(make_mailbox("imap", user, password, relay.port), idle_renew_seconds=RENEWAL)
    await connector.connect()
    state = await connector.open("INBOX")
    cursor = Cursor("INBOX", state.epoch, "0")
    for batch in await _all(connector, cursor):
        cursor = batch.cursor
    return Watched(connector, connector.watch(interval=RENEWAL), cursor, relay)


async def test_dovecot_deliveries_come_without_a_search_and_a_backlog_keeps_its_pages(
    dovecot: Dovecot, password_user: tuple[str, str]
) -> None:
    """Rounds of 1-3 deliveries: one ``UID FETCH n:*`` each, every message once, in UID order;
    then a backlog of 25 with pages of 10: UID SEARCH and FETCHes of at most 10 UIDs."""
    user, password = password_user
    filler = await dovecot.client(user, password)
    relay = await TcpRelay(dovecot.imap_port, record=True).up()
    await filler.append_many("INBOX", [make_message("before 0"), make_message("before 1")])
    watched = await _watched(dovecot, user, password, relay)
    try:
        assert watched.cursor.position != "0"
        seen: list[int] = []
        for round_, count in enumerate([1, 2, 3, 1]):
            await filler.append_many("INBOX", [make_message(f"round {round_}.{i}") for i in range(count)])
            position = int(watched.cursor.position)
            batches, sent = await watched.next_round()
            while len(_items(batches)) < count:  # Dovecot may tell of a MULTIAPPEND in parts
                more, also = await watched.next_round()
                batches, sent = batches + more, sent + also
            seen += _items(batches)
            assert sent[0] == b"UID FETCH %d:*" % (position + 1)
            assert not [c for c in sent if c.startswith(b"UID SEARCH")]
        assert seen == sorted(set(seen)) and len(seen) == 7

        await filler.append_many("INBOX", [make_message(f"backlog {i}") for i in range(25)])
        batches, sent = await watched.next_round(chunk=10)
        while sum(len(b.messages) for b in batches) < 25:  # told in parts: the rest comes later
            more, also = await watched.next_round(chunk=10)
            batches, sent = batches + more, sent + also
        assert sent[0].startswith(b"UID SEARCH")
        assert all(len(b.messages) <= 10 for b in batches)
        assert not [c for c in sent if c.startswith(b"UID FETCH") and c.endswith(b":*")]
        items = _items(batches)
        assert items == sorted(set(items)) and len(items) == 25 and items[0] > seen[-1]
    finally:
        await watched.connector.disconnect()
        await filler.logout()
        await relay.down()


async def test_dovecot_a_uid_gap_and_a_message_expunged_before_the_fetch(
    dovecot: Dovecot, password_user: tuple[str, str]
) -> None:
    """Three delivered, the middle one expunged at once: the other two come, the cursor at the
    last. One delivered and expunged after its EXISTS, before the FETCH: nothing at or below
    the cursor comes back (``n:*`` may answer an older message), and the next delivery comes."""
    user, password = password_user
    filler = await dovecot.client(user, password)
    relay = await TcpRelay(dovecot.imap_port, record=True).up()
    await filler.append_many("INBOX", [make_message("before")])
    watched = await _watched(dovecot, user, password, relay)
    try:
        await filler.select("INBOX")
        appended = await filler.append_many("INBOX", [make_message(f"gap {i}") for i in range(3)])
        uids = [a.uid for a in appended if a.uid is not None]
        assert len(uids) == 3
        await filler.store([uids[1]], ["\\Deleted"])
        await filler.expunge([uids[1]])
        position = int(watched.cursor.position)
        batches, sent = await watched.next_round()
        assert sent[0] == b"UID FETCH %d:*" % (position + 1)
        got = _items(batches)
        while uids[2] not in got:
            more, _ = await watched.next_round()
            got += _items(more)
        assert got in ([uids[0], uids[2]], uids)  # the middle one only if fetched before its expunge
        assert watched.cursor.position == str(uids[2])

        (lost,) = await filler.append_many("INBOX", [make_message("expunged soon")])
        assert lost.uid is not None
        await _new_mail_within(watched.changes, 10)
        await filler.store([lost.uid], ["\\Deleted"])
        await filler.expunge([lost.uid])
        since = len(relay.sent)
        late = await _all(watched.connector, watched.cursor)
        assert _items(late) in ([], [lost.uid])  # read before Dovecot let it go, or not at all
        assert _sent(relay, since)[0] == b"UID FETCH %d:*" % (int(watched.cursor.position) + 1)
        for batch in late:
            watched.cursor = batch.cursor

        (after,) = await filler.append_many("INBOX", [make_message("after")])
        batches, _ = await watched.next_round()
        assert _items(batches) == [after.uid]
    finally:
        await watched.connector.disconnect()
        await filler.logout()
        await relay.down()
