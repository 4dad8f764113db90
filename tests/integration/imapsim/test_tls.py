"""The simulator's implicit-TLS listener (``bench/watchers.py --tls``: what a real deployment
runs) with mailport's client: login, SELECT, IDLE that sees a delivery, and an IDLE wait that
ends at its timeout or at a wake-up without waiting longer."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailport.crypto import Secret
from mailport.imap import EventKind, ImapClient, PasswordAuth
from mailport.mailboxes.models import Security
from tests.imapsim import SimThread, sim_thread
from tests.integration.imap.conftest import make_message
from tests.mailstack.dovecot import make_self_signed_cert


@pytest.fixture(scope="module")
def tls_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimThread, int, Path]]:
    cert, key = make_self_signed_cert(tmp_path_factory.mktemp("imapsim-tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with sim_thread() as sim:
        port = asyncio.run_coroutine_threadsafe(sim.sim.listen_tls(context), sim.loop).result(10)
        yield sim, port, cert


async def test_implicit_tls_login_select_and_idle(tls_sim: tuple[SimThread, int, Path]) -> None:
    sim, port, cert = tls_sim
    user = "tls-user@sim.example.test"
    client = await ImapClient.open(
        "127.0.0.1",
        port,
        security=Security.SSL,
        ca_file=str(cert),
        command_timeout=20,
        auth=PasswordAuth(user, Secret("any")),
    )
    assert client.tls is not None and client.tls.verified
    info = await client.select("INBOX")
    assert info.exists == 0
    async with client.idle():
        started = time.monotonic()
        assert await client.idle_wait(0.3) == []  # the timeout ends the wait, no later
        assert 0.25 <= time.monotonic() - started < 2.0
        asyncio.get_running_loop().call_later(0.05, client._wake)
        started = time.monotonic()
        assert await client.idle_wait(30) == []  # a wake-up ends it at once
        assert time.monotonic() - started < 5.0
        asyncio.get_running_loop().call_later(0.1, sim.deliver, user, make_message("over tls"))
        events = await client.idle_wait(10)
        assert any(e.kind is EventKind.EXISTS and e.number == 1 for e in events)
    fetched = await client.fetch_since(1)
    assert b"Subject: over tls" in (fetched[0].raw or b"")
    await client.logout()
