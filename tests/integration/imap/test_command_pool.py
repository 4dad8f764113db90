"""The command pool over the real IMAP connector, against servers that limit connections per
account: a scripted server speaking Gmail's words ("Too many simultaneous connections") and the
real Dovecot (``mail_max_userip_connections``, 10 by default). The pool shrinks to what the
server allows and the request that met the refusal gets a connection that is open already."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

from mailport import metrics
from mailport.connectors import registry
from mailport.connectors.base import Connector
from mailport.imap import ImapClient
from mailport.mailboxes.models import (
    Mailbox,
    Security,
    ServerSettings,
)
from mailport.mailboxes.pool import CommandPool
from tests.connectors.mailbed import make_mailbox
from tests.fixtures.scripted import IMAPScript, scripted_imap
from tests.mailstack.dovecot import Dovecot


def imap_mailbox(user: str, password: str, port: int) -> Mailbox:
    return make_mailbox("imap", user, password, port)


def imap_connector(mailbox: Mailbox) -> Connector:
    return registry.create(mailbox, registry.ConnectorContext())


class Holder:
    def __init__(self, pool: CommandPool, mailbox: Mailbox) -> None:
        self.got: asyncio.Future[Connector] = asyncio.get_running_loop().create_future()
        self.done = asyncio.Event()
        self.task = asyncio.create_task(self._run(pool, mailbox))

    async def _run(self, pool: CommandPool, mailbox: Mailbox) -> None:
        async with pool.borrow(mailbox) as connector:
            self.got.set_result(connector)
            await self.done.wait()

    async def release(self) -> None:
        self.done.set()
        await self.task


async def test_gmail_words_shrink_the_pool_and_the_request_waits_for_an_open_connection() -> None:
    script = IMAPScript(max_connections=2)
    async with scripted_imap(script) as port:
        mailbox = imap_mailbox("someone@example.test", "pw", port)
        pool = CommandPool(imap_connector, size=4, wait=5.0)
        shrinks = _sample_value("mailport_command_pool_shrinks_total")
        try:
            first, second = Holder(pool, mailbox), Holder(pool, mailbox)
            held = {await first.got, await second.got}
            third = Holder(pool, mailbox)
            for _ in range(100):
                if script.refused:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            assert script.refused == 1 and not third.got.done()
            assert pool.sizes(mailbox.id)["limit"] == 2 and pool.sizes(mailbox.id)["waiting"] == 1
            assert _sample_value("mailport_command_pool_shrinks_total") == shrinks + 1
            await first.release()
            assert await third.got in held  # an open connection, not a fourth login
            assert await (await third.got).ping()  # NOOP over the shared session
            await second.release()
            await third.release()
            assert script.commands.count("AUTHENTICATE") == 3 and script.open_connections == 2
        finally:
            await pool.aclose()
        assert script.open_connections == 0


async def test_dovecot_connection_limit_shrinks_the_pool(dovecot: Dovecot) -> None:
    user, password = dovecot.dyn_user(f"pool{uuid.uuid4().hex[:10]}")
    others: list[ImapClient] = [await dovecot.client(user, password) for _ in range(9)]  # the user's programs
    mailbox = imap_mailbox(user, password, dovecot.imap_port)
    pool = CommandPool(imap_connector, size=3, wait=10.0)
    try:
        first = Holder(pool, mailbox)
        connector = await first.got  # the 10th connection: allowed
        second = Holder(pool, mailbox)
        for _ in range(200):
            if pool.sizes(mailbox.id)["limit"] == 1:
                break
            await asyncio.sleep(0.02)
        assert pool.sizes(mailbox.id)["limit"] == 1 and not second.got.done()
        await first.release()
        assert await second.got is connector
        await second.release()
    finally:
        await pool.aclose()
        for client in others:
            await client.logout()


async def test_idle_connections_are_checked_with_noop_and_replaced_when_dead(dovecot: Dovecot) -> None:
    user, password = dovecot.dyn_user(f"pool{uuid.uuid4().hex[:10]}")
    mailbox = imap_mailbox(user, password, dovecot.imap_port)
    now = [0.0]
    pool = CommandPool(imap_connector, size=2, wait=5.0, clock=lambda: now[0])
    try:
        async with pool.borrow(mailbox) as first:
            await first.list_folders()
        assert dovecot.logins(user) == 1
        now[0] += 30  # long enough to be asked before reuse
        async with pool.borrow(mailbox) as checked:
            assert checked is first and checked.is_connected
        dovecot.doveadm("kick", user)  # the server drops the session behind the pool's back
        for _ in range(50):
            await asyncio.sleep(0.02)
        now[0] += 30
        async with pool.borrow(mailbox) as fresh:
            assert fresh is not first
            folders = await fresh.list_folders()
            assert any(folder.role == "inbox" for folder in folders)
        changed = dataclasses.replace(
            mailbox, imap=ServerSettings("localhost", dovecot.imap_port, Security.NONE)
        )
        async with pool.borrow(changed) as renewed:
            assert renewed is not fresh and renewed.is_connected
    finally:
        await pool.aclose()


def _sample_value(name: str) -> float:
    return metrics.REGISTRY.get_sample_value(name) or 0.0
