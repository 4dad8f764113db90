"""Crashes: a ``mailport worker`` process killed with SIGKILL between the server's ``250`` and
its own bookkeeping, and one killed before DATA. The queue must send every message exactly
once (RFC 1047's window is closed by ``committing``: never sent again, recorded unconfirmed)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.events import EventType
from mailport.sending.models import SendState
from tests.fixtures.api import TenantHandle
from tests.fixtures.process import start_mailport
from tests.integration.sending.outbox_bed import Gate, make_box, row, worker_environment
from tests.integration.sending.test_outbox_worker import (
    NO_COPY,
    arrived,
    events_of,
    hello,
    recipient,
    settled,
    worker_for,
)
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer

CLAIM_SECONDS = "2"


def start_worker(settings: Settings, tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = tmp_path / "worker.log"
    env = worker_environment(
        settings, MAILPORT_SEND_CLAIM_SECONDS=CLAIM_SECONDS, MAILPORT_SEND_POLL_SECONDS="0.2"
    )
    return start_mailport("worker", cwd=tmp_path, env=env, log_path=log_path), log_path


async def until(check: Any, what: str, log_path: Path, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not happen; worker log:\n{log_path.read_text()[-3000:]}")
        await asyncio.sleep(0.05)


async def test_kill_after_the_servers_250_never_sends_again(
    services: Services,
    settings: Settings,
    tenant: TenantHandle,
    dovecot: Dovecot,
    smtp: SubmissionServer,
    tmp_path: Path,
) -> None:
    smtp.handler.reset()
    box = await make_box(services, dovecot, smtp.port, tenant_id=tenant.id, sending=NO_COPY)
    queued = (await services.sending.send(tenant.id, box.mailbox_id, hello(recipient()))).send
    proc, log_path = start_worker(settings, tmp_path)
    # the server has the whole message; the worker dies before it reads the 250
    smtp.handler.on_message = lambda received: os.kill(proc.pid, signal.SIGKILL)
    try:

        async def killed() -> bool:
            return proc.poll() is not None

        await until(killed, "the kill after DATA", log_path)
    finally:
        smtp.handler.on_message = None
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(arrived(smtp, queued.message_id)) == 1
    assert (await row(services, queued.id)).state == SendState.COMMITTING.value

    restarted = worker_for(services)  # another process: finds the claim run out
    restarted.start()
    try:
        sent = await settled(services, box, queued.id, timeout=30)
        await asyncio.sleep(0.5)  # time enough to send it again, were that possible
    finally:
        await restarted.stop()
    assert sent.state is SendState.SENT and sent.confirmed is False and sent.attempts == 1
    assert sent.smtp_reply is None
    assert len(arrived(smtp, queued.message_id)) == 1
    [event] = await events_of(services, queued.id, EventType.MESSAGE_SENT)
    assert event["confirmed"] is False and event["message_id"] == queued.message_id


async def test_kill_before_data_sends_once_after_the_claim_runs_out(
    services: Services,
    settings: Settings,
    tenant: TenantHandle,
    dovecot: Dovecot,
    smtp: SubmissionServer,
    tmp_path: Path,
) -> None:
    smtp.handler.reset()
    async with Gate(smtp.port) as gate:
        box = await make_box(services, dovecot, gate.port, tenant_id=tenant.id, sending=NO_COPY)
        queued = (await services.sending.send(tenant.id, box.mailbox_id, hello(recipient()))).send
        proc, log_path = start_worker(settings, tmp_path)
        try:

            async def claimed_and_connected() -> bool:
                return bool(gate.held) and (await row(services, queued.id)).state == SendState.SENDING.value

            await until(claimed_and_connected, "the claim and the connection", log_path)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        crashed = await row(services, queued.id)
        assert crashed.state == SendState.SENDING.value and crashed.attempts == 1
        assert not smtp.handler.messages
        gate.hold = False  # the server answers again

        restarted = worker_for(services)
        restarted.start()
        try:
            sent = await settled(services, box, queued.id, timeout=30)
            await asyncio.sleep(0.5)
        finally:
            await restarted.stop()
    assert sent.state is SendState.SENT and sent.confirmed is True and sent.attempts == 2
    assert len(arrived(smtp, queued.message_id)) == 1
    assert len(await events_of(services, queued.id, EventType.MESSAGE_SENT)) == 1
