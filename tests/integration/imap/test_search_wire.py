"""The client's search commands on the wire, against a scripted server: UID SEARCH with
``RETURN (ALL)`` where ESEARCH is offered (and plain where it is not), CHARSET UTF-8 with
literals, no space inside parentheses around a literal, UID THREAD, and FETCH of attributes the
parser does not model (Gmail's). Pure helpers on recorded values."""

from __future__ import annotations

from mailport.crypto import Secret
from mailport.imap import ImapClient
from mailport.imap.arguments import Literal
from mailport.imap.client import _flatten_thread, esearch_all
from mailport.sasl import PasswordAuth
from tests.fixtures.imap import DEFAULT_CAPS, ScriptedConnection, ScriptedImapServer, answer_login

ESEARCH_CAPS = DEFAULT_CAPS + b" ESEARCH THREAD=REFERENCES X-GM-EXT-1"


async def _client(port: int) -> ImapClient:
    client = ImapClient("127.0.0.1", port, security="plain", allow_plaintext=True, allow_plaintext_auth=True)
    await client.connect()
    await client.authenticate(PasswordAuth("u", Secret("p")))
    return client


async def test_esearch_thread_and_attributes_on_the_wire() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await answer_login(conn, capabilities=ESEARCH_CAPS)
        tag, verb, _ = await conn.read_command()
        assert verb == b"UID SEARCH"
        await conn.send(b'* ESEARCH (TAG "' + tag + b'") UID ALL 2:4,9\r\n' + tag + b" OK done\r\n")
        tag, verb, _ = await conn.read_command()
        await conn.send(b'* ESEARCH (TAG "' + tag + b'") UID\r\n' + tag + b" OK done\r\n")
        tag, verb, _ = await conn.read_command()
        assert verb == b"UID THREAD"
        await conn.send(b"* THREAD (2)(3 6 (4 23)(44 7 96))\r\n" + tag + b" OK done\r\n")
        tag, verb, _ = await conn.read_command()
        assert verb == b"UID FETCH"
        await conn.send(
            b'* 1 FETCH (X-GM-THRID 1278455344230334865 UID 4 X-GM-LABELS (\\Inbox "Work/Clients" '
            b"&AMk-t&AOk-))\r\n* 2 FETCH (FLAGS (\\Seen))\r\n" + tag + b" OK done\r\n"
        )
        tag = await conn.expect(b"LOGOUT")
        await conn.send(b"* BYE bye\r\n" + tag + b" OK done\r\n")

    async with ScriptedImapServer(script) as server:
        client = await _client(server.port)
        try:
            assert await client.uid_search(
                [b"SUBJECT", Literal("Grüße".encode()), b"UNSEEN"], charset="UTF-8"
            ) == [
                2,
                3,
                4,
                9,
            ]
            assert await client.uid_search([b"(SUBJECT", Literal(b"x\xc3\xa4"), b")"]) == []
            threads = await client.uid_thread([b"SINCE 1-Mar-2024"], algorithm="REFERENCES")
            assert threads == [[2], [3, 6, 4, 23, 44, 7, 96]]
            (attrs,) = await client.fetch_attributes([4], ["X-GM-THRID", "X-GM-LABELS"])
            assert attrs[b"UID"] == b"4" and attrs[b"X-GM-THRID"] == b"1278455344230334865"
        finally:
            await client.logout()
    assert not server.errors
    lines = server.commands
    greeting = "Grüße".encode()
    assert lines[1].endswith(
        b"UID SEARCH RETURN (ALL) CHARSET UTF-8 SUBJECT {%d+}\r\n" % len(greeting) + greeting + b" UNSEEN"
    )
    assert lines[2].endswith(b"UID SEARCH RETURN (ALL) (SUBJECT {3+}\r\nx\xc3\xa4)")  # no space before ")"
    assert lines[3].endswith(b"UID THREAD REFERENCES UTF-8 SINCE 1-Mar-2024")
    assert lines[4].endswith(b"UID FETCH 4 (UID X-GM-THRID X-GM-LABELS)")


async def test_plain_search_without_esearch() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await answer_login(conn)
        tag, verb, _ = await conn.read_command()
        await conn.send(b"* SEARCH 7 3 5\r\n" + tag + b" OK done\r\n")
        tag = await conn.expect(b"LOGOUT")
        await conn.send(b"* BYE bye\r\n" + tag + b" OK done\r\n")

    async with ScriptedImapServer(script) as server:
        client = await _client(server.port)
        try:
            assert await client.uid_search([b"FROM alice"]) == [3, 5, 7]
        finally:
            await client.logout()
    assert server.commands[1].endswith(b"UID SEARCH FROM alice")


def test_esearch_and_thread_values() -> None:
    assert esearch_all([[b"TAG", b"A1"], b"UID", b"ALL", b"1:3,7"]) == [1, 2, 3, 7]
    assert esearch_all([[b"TAG", b"A1"], b"UID", b"COUNT", b"0"]) == []
    assert esearch_all([b"UID", b"MIN", b"1", b"ALL", b"5"]) == [5]
    assert _flatten_thread([b"3", b"6", [b"4", b"23"], [b"44", b"7", b"96"]]) == [3, 6, 4, 23, 44, 7, 96]
