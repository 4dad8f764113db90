"""Changes made on the server by another IMAP client, seen by ``ImapConnector.changes_since``
against the real Dovecot in both layouts (the bed's, and ``INBOX.`` with ``.``): with QRESYNC,
with CONDSTORE only (QRESYNC ignored) and with neither (a snapshot diff). A new connection that
continues from the saved token neither repeats nor loses a change; a message after the ingestion
cursor is new mail, not a change. IDLE reports flag changes and expunges at once while asked
to, and stays quiet about flags otherwise."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from mailport.bootstrap import Services
from mailport.connectors.base import ChangeKind, Cursor, MessageChange
from mailport.connectors.folders import Role
from mailport.connectors.imap import FolderState, ImapConnector
from mailport.connectors.imap_changes import Token, neutral_flags
from mailport.imap import ImapClient
from tests.connectors.conftest import _mailbox
from tests.integration.sync.conftest import make_message
from tests.mailstack.dovecot import Dovecot

MODES = {
    "qresync": (),
    "condstore": ("QRESYNC",),
    "snapshot": ("QRESYNC", "CONDSTORE"),
}


def test_neutral_flags_rename_system_flags_and_keep_keywords() -> None:
    assert neutral_flags(["\\Seen", "$Work", "\\Recent", "\\Flagged", "\\Deleted", "Later"]) == (
        "flagged",
        "seen",
        "$Work",
        "Later",
    )


def test_a_snapshot_token_is_compact_and_round_trips() -> None:
    flags = {uid: (("\\Seen",) if uid % 2 else ()) for uid in range(1, 10_001)}
    flags.update({uid: ("\\Seen",) for uid in range(5_000, 6_000)})
    token = Token("s", diffs=3, lowest=1, flags=flags)
    text = token.encode()
    back = Token.decode(text)
    assert back is not None and back.flags == flags and back.diffs == 3
    assert Token.decode("not json") is None and Token.decode(None) is None


class Other:
    """Another IMAP client of the same user, changing things."""

    def __init__(self, client: ImapClient) -> None:
        self.client = client

    async def flag(self, uid: int, *flags: str, mode: str = "+") -> None:
        await self.client.select("INBOX")
        await self.client.store([uid], list(flags), mode=mode)

    async def expunge(self, uid: int) -> None:
        await self.client.select("INBOX")
        await self.client.store([uid], ["\\Deleted"])
        await self.client.expunge([uid])


@pytest.fixture(params=[False, True], ids=["standard", "dotted"])
async def server(request: pytest.FixtureRequest) -> Dovecot:
    found: Dovecot = request.getfixturevalue("dovecot_dotted" if request.param else "dovecot")
    return found


@pytest.fixture
async def account(server: Dovecot) -> AsyncIterator[tuple[str, str, Other]]:
    user, password = server.dyn_user(f"c{uuid.uuid4().hex[:10]}")
    client = await server.client(user, password)
    for n in range(4):
        await client.append("INBOX", make_message(f"m{n}"))
    try:
        yield user, password, Other(client)
    finally:
        await client.logout()


async def _connector(services: Services, server: Dovecot, user: str, password: str, ignore: tuple[str, ...]):
    mailbox = await _mailbox(services, "imap", user, password, server.imap_port)
    connector = ImapConnector(mailbox, ignore_capabilities=ignore)
    connector.report_changes(lambda: True)
    await connector.connect()
    return connector


def _by_uid(changes: list[MessageChange]) -> dict[int, tuple[str, ...] | None]:
    return {int(c.item): c.flags for c in changes}


@pytest.mark.parametrize("mode", list(MODES))
async def test_flag_changes_and_expunges_by_another_client(
    services: Services, server: Dovecot, account: tuple[str, str, Other], mode: str
) -> None:
    user, password, other = account
    connector = await _connector(services, server, user, password, MODES[mode])
    try:
        state = await connector.open("INBOX")
        assert isinstance(state, FolderState)
        until = Cursor("INBOX", state.epoch, "3")  # messages 1-3 ingested; 4 is still new mail
        first = await connector.changes_since(state, None, until=until)
        assert first.changes == [] and Token.decode(first.token).mode == mode[0]  # type: ignore[union-attr]

        await other.flag(1, "\\Seen")
        await other.flag(2, "\\Flagged", "$Work")
        await other.expunge(3)
        await other.flag(4, "\\Seen")  # after the cursor: new mail, not a change
        found = await connector.changes_since(state, first.token, until=until)
        assert _by_uid(found.changes) == {1: ("seen",), 2: ("flagged", "$Work"), 3: None}
        updated = next(c for c in found.changes if c.item == "2")
        source = updated.source["imap"]
        assert (source["folder"], source["uidvalidity"], source["uid"]) == ("INBOX", int(state.epoch), 2)
        if mode == "snapshot":
            assert "modseq" not in source and updated.version == "s1"
        else:
            assert source["modseq"] == int(updated.version) > 0

        # a new connection continuing from the saved token: nothing again, and the next change once
        await connector.disconnect()
        await connector.connect()
        state = await connector.open("INBOX")
        again = await connector.changes_since(state, found.token, until=until)
        assert again.changes == []
        await other.flag(1, "\\Seen", mode="-")
        later = await connector.changes_since(state, again.token, until=until)
        assert _by_uid(later.changes) == {1: ()}
        assert later.changes[0].version != updated.version
    finally:
        await connector.disconnect()


@pytest.mark.parametrize("mode", ["qresync", "snapshot"])
async def test_idle_reports_flags_and_expunges_only_while_asked(
    services: Services, server: Dovecot, account: tuple[str, str, Other], mode: str
) -> None:
    user, password, other = account
    connector = await _connector(services, server, user, password, MODES[mode])
    asked = True
    connector.report_changes(lambda: asked)
    try:
        await connector.open("INBOX")
        changes = aiter(connector.watch(interval=60))
        waiting = asyncio.ensure_future(anext(changes))
        await asyncio.sleep(0.3)  # in IDLE
        await other.flag(1, "\\Flagged")
        assert (await asyncio.wait_for(waiting, 5)).kind is ChangeKind.FLAGS
        waiting = asyncio.ensure_future(anext(changes))
        await asyncio.sleep(0.3)
        await other.expunge(2)
        # Dovecot follows EXPUNGE with the new EXISTS count: reported as possible new mail,
        # after which the watcher looks for changes too
        assert (await asyncio.wait_for(waiting, 5)).kind in (ChangeKind.EXPUNGED, ChangeKind.NEW_MAIL)

        asked = False
        waiting = asyncio.ensure_future(anext(changes))
        await asyncio.sleep(0.3)
        await other.flag(3, "\\Seen")
        await asyncio.sleep(1.0)
        assert not waiting.done()  # nobody wants it: IDLE goes on
        connector.wake()
        assert (await asyncio.wait_for(waiting, 5)).kind is ChangeKind.TICK
        await changes.aclose()  # type: ignore[attr-defined]
    finally:
        await connector.disconnect()


async def test_the_folder_snapshot_names_paths_and_roles_without_counts(
    services: Services, server: Dovecot, account: tuple[str, str, Other]
) -> None:
    user, password, other = account
    prefix = "INBOX." if server.separator == "." else ""
    await other.client.create(prefix + "Größe")
    connector = await _connector(services, server, user, password, ())
    try:
        tree = {f.path: f for f in await connector.folder_snapshot()}
    finally:
        await connector.disconnect()
    made = tree[prefix + "Größe"]
    assert (made.name, made.role, made.messages) == ("Größe", None, None)
    assert tree[prefix + "Sent"].role is Role.SENT and tree["INBOX"].role is Role.INBOX
