"""IDLE with real deliveries, and a Dovecot that goes away while a client idles."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from mailport.crypto import Secret
from mailport.errors import ConnectionLostError
from mailport.imap import EventKind, ImapClient, PasswordAuth, ServerEvent
from tests.fixtures.process import children
from tests.integration.imap.conftest import make_message
from tests.mailstack.dovecot import Dovecot


async def test_idle_sees_deliveries_then_fetches_them(
    imap: ImapClient, dovecot: Dovecot, password_user
) -> None:
    await imap.select("INBOX")
    async with imap.idle():
        assert await imap.idle_wait(0.3) == []
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, dovecot.deliver, password_user[0], make_message("pushed"))
        events = await imap.idle_wait(10)
        assert any(e.kind is EventKind.EXISTS and e.number == 1 for e in events)
    fetched = await imap.fetch_since(1)
    assert b"Subject: pushed" in (fetched[0].raw or b"")


async def test_events_go_to_a_callback_when_given(connect, dovecot: Dovecot, password_user) -> None:
    seen: list[ServerEvent] = []
    client: ImapClient = await connect(on_event=seen.append)
    await client.select("INBOX")
    await client.idle_start()
    await asyncio.to_thread(dovecot.deliver, password_user[0], make_message("cb"))
    await client.idle_wait(10)
    await client.idle_done()
    assert any(e.kind is EventKind.EXISTS for e in seen)
    assert await client.is_alive()
    await client.logout()


async def _idling_client(server: Dovecot) -> ImapClient:
    user, password = server.dyn_user("idler")
    client = await ImapClient.open(
        "127.0.0.1", server.imaps_port, ca_file=server.ca_file, auth=PasswordAuth(user, Secret(password))
    )
    await client.select("INBOX")
    await client.idle_start()
    return client


async def _wait_for_loss(client: ImapClient) -> tuple[ConnectionLostError, float]:
    started = time.monotonic()
    with pytest.raises(ConnectionLostError) as info:
        while True:
            await client.idle_wait(60)
    assert not client.connected
    return info.value, time.monotonic() - started


# Not serial: it bounds nothing tighter than Dovecot's own going away (+3 s), and it spends its
# ~10 s waiting for Dovecot's shutdown, which other tests may use meanwhile.
async def test_dovecot_stopped_while_idling_ends_the_wait_with_its_bye(mail_root) -> None:
    own = Dovecot(mail_root / "dovecot-idle-stop")
    own.start()
    try:
        client = await _idling_client(own)
        stopping = asyncio.get_running_loop().run_in_executor(None, own.stop)  # SIGTERM, in a thread
        error, elapsed = await _wait_for_loss(client)
        lost_at = time.monotonic()
        await stopping
        stopped_at = time.monotonic()
        # Dovecot itself waits ~10 s after SIGTERM before it says BYE to its clients, so the
        # measure is relative to Dovecot going away: the client knew no later than that.
        assert elapsed < 60
        assert lost_at <= stopped_at + 3
        assert "shutting down" in (error.server_said or "")
    finally:
        own.stop()


@pytest.mark.serial
async def test_dovecot_killed_while_idling_ends_the_wait_within_seconds(mail_root) -> None:
    own = Dovecot(mail_root / "dovecot-idle-kill")
    own.start()
    try:
        client = await _idling_client(own)
        assert own.proc is not None
        master = own.proc.pid
        for pid in [master, *children(master)]:
            os.kill(pid, signal.SIGKILL)  # a crash: sockets close with no BYE
        error, elapsed = await _wait_for_loss(client)
        assert elapsed < 3
        assert error.server_said is None
    finally:
        own.stop()
