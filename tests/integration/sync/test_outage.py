"""Dovecot down for 10 s and restarted (an instance of its own): mail delivered during the
outage arrives, the outage is reported once (``mailbox.error``), and the watcher reconnects."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailport.bootstrap import Services
from tests.fixtures.process import children
from tests.integration.sync.conftest import Bed, all_events, make_message, wait_for
from tests.mailstack.dovecot import Dovecot


@pytest.fixture
def database_url(tmp_path: Path) -> str:  # 10 s of outage: once, on SQLite, is enough
    return f"sqlite+aiosqlite:///{tmp_path / 'mailport.db'}"


@pytest.fixture
def own_dovecot(mail_root: Path) -> Iterator[Dovecot]:
    server = Dovecot(mail_root / f"dovecot-outage-{uuid.uuid4().hex[:6]}")
    server.start()
    yield server
    server.stop()


def _stop_everything(dovecot: Dovecot) -> None:
    """The whole server goes away, its per-connection imap processes too (a plain SIGTERM leaves
    those serving their clients for a while, which is no outage at all)."""
    assert dovecot.proc is not None
    master = dovecot.proc.pid
    for pid in [master, *children(master)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    dovecot.proc.wait(10)
    dovecot.stop()


def _drop_into_maildir(dovecot: Dovecot, user: str, raw: bytes) -> None:
    """Deliver while Dovecot is down: a file in the user's Maildir/new, as an MTA would."""
    local, domain = user.split("@")
    new = dovecot.root / "mail" / domain / local / "Maildir" / "new"
    path = new / f"{time.time_ns()}.{uuid.uuid4().hex}.outage"
    path.write_bytes(raw)
    stat = new.stat()
    os.chmod(path, 0o644)
    if os.geteuid() == 0:
        os.chown(path, stat.st_uid, stat.st_gid)


async def test_mail_delivered_during_an_outage_arrives(
    services: Services, own_dovecot: Dovecot, password_user: tuple[str, str]
) -> None:
    tenant, _ = await services.tenants.create_tenant("outage")
    bed = Bed(services, own_dovecot, password_user[0], password_user[1], tenant.id)
    mailbox = await bed.add_mailbox()
    orchestrator = bed.orchestrator()
    await orchestrator.start()
    try:
        await asyncio.to_thread(own_dovecot.deliver, bed.user, make_message("before"))
        await wait_for(lambda: bed.received(mailbox.id), timeout=10)
        _stop_everything(own_dovecot)
        for i in range(2):
            _drop_into_maildir(own_dovecot, bed.user, make_message(f"during outage {i}"))
        await asyncio.sleep(10)
        errors = await all_events(services, mailbox_id=mailbox.id, type="mailbox.error")
        assert len(errors) == 1  # reported once, not once per reconnect attempt
        await asyncio.to_thread(own_dovecot.start)

        async def three() -> list[object]:
            got = await bed.received(mailbox.id)
            return got if len(got) >= 3 else []

        got = await wait_for(three, timeout=15)
    finally:
        await orchestrator.stop()
    assert [e.payload["subject"] for e in got] == ["before", "during outage 0", "during outage 1"]
    connected = await all_events(services, mailbox_id=mailbox.id, type="mailbox.connected")
    assert len(connected) == 2
