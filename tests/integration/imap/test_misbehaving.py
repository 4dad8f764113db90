"""The client against a scripted server that misbehaves: typed errors, never a hang."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from mailport.crypto import Secret
from mailport.errors import ConnectError, ConnectionLostError, MailTimeoutError, ProtocolError, TLSError
from mailport.imap import EventKind, ImapClient, PasswordAuth
from tests.fixtures.imap import Script, ScriptedConnection, ScriptedImapServer, answer_login, serve_commands


def plain_client(server: ScriptedImapServer, **options: object) -> ImapClient:
    options.setdefault("connect_timeout", 2)
    options.setdefault("command_timeout", 2)
    return ImapClient(
        "127.0.0.1",
        server.port,
        security="plain",
        allow_plaintext=True,
        allow_plaintext_auth=True,
        **options,  # type: ignore[arg-type]
    )


AUTH = PasswordAuth("user@example.test", Secret("secret"))


@asynccontextmanager
async def signed_in(script: Script) -> AsyncIterator[ImapClient]:
    """A plaintext client, connected and signed in to a scripted server running ``script``."""
    async with ScriptedImapServer(script) as server:
        client = plain_client(server)
        await client.connect()
        await client.authenticate(AUTH)
        yield client


async def test_garbage_greeting_is_a_protocol_error() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.send(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await conn.hang()

    async with ScriptedImapServer(script) as server:
        client = plain_client(server)
        with pytest.raises(ProtocolError):
            await client.connect()
        assert not client.connected


@pytest.mark.serial
async def test_server_that_never_speaks_times_out_on_the_greeting() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.hang()

    async with ScriptedImapServer(script) as server:
        client = plain_client(server, connect_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(MailTimeoutError, match="no greeting"):
            await client.connect()
        assert time.monotonic() - started < 2
        assert isinstance(MailTimeoutError("x"), TimeoutError)


async def test_a_command_past_its_deadline_closes_the_connection() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await answer_login(conn)
        await conn.expect(b"NOOP")
        await conn.hang()

    async with signed_in(script) as client:
        with pytest.raises(MailTimeoutError):
            await client.noop(timeout=0.3)
        assert not client.connected
        with pytest.raises(ConnectionLostError):
            await client.noop()


async def test_truncated_response_is_connection_lost() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await answer_login(conn)
        await conn.expect(b"UID FETCH")
        await conn.send(b"* 1 FETCH (UID 1 BODY[] {100}\r\nonly a part")
        await conn.close()

    async with signed_in(script) as client:
        with pytest.raises(ConnectionLostError, match="middle of a response"):
            await client.fetch("1:*")


async def test_bye_in_the_middle_of_a_fetch() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await answer_login(conn)
        await conn.expect(b"UID FETCH")
        await conn.send(b"* 1 FETCH (UID 1 FLAGS () BODY[] {5}\r\nhello)\r\n")
        await conn.send(b"* BYE [UNAVAILABLE] Server shutting down\r\n")
        await conn.close()

    async with signed_in(script) as client:
        with pytest.raises(ConnectionLostError) as info:
            await client.fetch("1:*")
        assert info.value.server_said == "[UNAVAILABLE] Server shutting down"  # the response code kept


async def test_garbage_in_the_middle_of_a_session() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await answer_login(conn)
        await conn.expect(b"NOOP")
        await conn.send(b"\x00\xff garbage without structure\r\n")
        await conn.hang()

    async with signed_in(script) as client:
        with pytest.raises(ProtocolError):
            await client.noop()
        assert not client.connected


@pytest.mark.serial
async def test_bye_while_idling_ends_the_wait_with_a_typed_error() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await answer_login(conn)
        tag = await conn.expect(b"SELECT")
        await conn.send(b"* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n" + tag + b" OK done\r\n")
        await conn.expect(b"IDLE")
        await conn.send(b"+ idling\r\n")
        await asyncio.sleep(0.2)
        await conn.send(b"* OK [ALERT] Maintenance in 5 minutes\r\n* XUNKNOWN stuff (1 2)\r\n* 1 EXISTS\r\n")
        await asyncio.sleep(0.2)
        await conn.send(b"* BYE Autologout; idle for too long\r\n")
        await conn.hang()  # keep the socket open: the BYE alone must end the wait

    async with signed_in(script) as client:
        assert (await client.select()).uidvalidity == 7
        await client.idle_start()
        events = await client.idle_wait(5)
        kinds = [e.kind for e in events]
        assert kinds == [EventKind.ALERT, EventKind.EXISTS]
        assert events[0].text == "Maintenance in 5 minutes"
        started = time.monotonic()
        with pytest.raises(ConnectionLostError) as info:
            while True:
                await client.idle_wait(5)
        assert time.monotonic() - started < 2
        assert "idle for too long" in (info.value.server_said or "")
        client.close()


async def test_plaintext_injected_after_starttls_ok_is_refused(imap_server_tls) -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.greet(b"IMAP4rev1 STARTTLS LOGINDISABLED")
        tag = await conn.expect(b"STARTTLS")
        # a man in the middle appends a forged response to the OK, before TLS starts
        await conn.send(tag + b" OK Begin TLS\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n")
        await conn.hang()

    async with ScriptedImapServer(script) as server:
        client = ImapClient(
            "127.0.0.1", server.port, security="starttls", connect_timeout=2, command_timeout=2
        )
        with pytest.raises(ProtocolError, match="injection"):
            await client.connect()
        assert not client.connected


async def test_starttls_not_offered_is_a_tls_error() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.greet(b"IMAP4rev1 AUTH=PLAIN")
        await conn.hang()

    async with ScriptedImapServer(script) as server:
        client = ImapClient("127.0.0.1", server.port, security="starttls", connect_timeout=2)
        with pytest.raises(TLSError, match="does not offer STARTTLS"):
            await client.connect()


async def test_implicit_tls_to_a_scripted_tls_server_and_is_alive_while_idling(
    imap_server_tls, dovecot
) -> None:
    async def script(conn: ScriptedConnection) -> None:
        await answer_login(conn)
        tag = await conn.expect(b"SELECT")
        await conn.send(b"* 0 EXISTS\r\n" + tag + b" OK done\r\n")
        tag = await conn.expect(b"IDLE")
        await conn.send(b"+ idling\r\n")
        assert await conn.read_line() == b"DONE"
        await conn.send(tag + b" OK IDLE terminated\r\n")
        await serve_commands(conn, {})

    async with ScriptedImapServer(script, tls=imap_server_tls) as server:
        client = await ImapClient.open(
            "127.0.0.1", server.port, ca_file=dovecot.ca_file, command_timeout=2, auth=AUTH
        )
        assert client.tls is not None and client.tls.verified
        await client.select()
        async with client.idle():
            assert await client.is_alive()
            assert await client.idle_wait(0.1) == []
        assert await client.is_alive()
        await client.logout()
        assert not server.errors


async def test_nothing_listening_is_a_connect_error() -> None:
    from tests.mailstack.dovecot import free_port

    client = ImapClient("127.0.0.1", free_port(), connect_timeout=2)
    with pytest.raises(ConnectError) as info:
        await client.connect()
    assert isinstance(info.value.__cause__, OSError)


async def test_fetch_sorts_out_unsolicited_updates_between_bulk_shaped_messages() -> None:
    """Bulk-shaped messages (the framer's fast path) and, in between, a flag update for another
    message and a FETCH of another shape: the update becomes an event, not a message, and the
    messages are the same whichever path parsed them."""
    bulk = (
        b"* 1 FETCH (UID 10 FLAGS (\\Seen) BODY[] {2}\r\nab)\r\n"
        b"* 2 FETCH (UID 11 FLAGS () BODY[] {0}\r\n)\r\n"
    )

    async def script(conn: ScriptedConnection) -> None:
        await answer_login(conn)
        tag = await conn.expect(b"UID FETCH")
        await conn.send(bulk + tag + b" OK done\r\n")
        tag = await conn.expect(b"UID FETCH")
        await conn.send(
            b"* 1 FETCH (UID 10 FLAGS (\\Seen) BODY[] {2}\r\nab)\r\n"
            b"* 7 FETCH (FLAGS (\\Deleted))\r\n"
            b"* 2 FETCH (FLAGS () UID 11 BODY[] {0}\r\n)\r\n" + tag + b" OK done\r\n"
        )

    async with signed_in(script) as client:
        first = await client.fetch("1:*")
        assert [(m.seq, m.uid, m.flags, m.raw) for m in first] == [
            (1, 10, ("\\Seen",), b"ab"),
            (2, 11, (), b""),
        ]
        assert client.events() == []
        second = await client.fetch("1:*")
        assert second == first
        assert [(e.kind, e.number, e.flags) for e in client.events()] == [
            (EventKind.FETCH, 7, ("\\Deleted",))
        ]
