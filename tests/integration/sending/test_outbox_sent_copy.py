"""The worker's Sent copy step against the real Dovecot: stored once, ``\\Seen``, after the send
(never holding it up), skipped where the provider files it itself unless the mailbox says
``always``, retried on its own when the mailbox cannot be reached; the bytes dropped at the end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mailport.bootstrap import Services
from mailport.connectors.mail import ListQuery
from mailport.sending.models import SendingSettings, SendState, SentCopyMode, SentCopyState
from mailport.sending.worker import SendWorker
from tests.fixtures.api import TenantHandle
from tests.integration.sending.outbox_bed import Box, make_box, row
from tests.integration.sending.test_outbox_worker import arrived, hello, recipient, settled, worker_for
from tests.mailstack.dovecot import Dovecot, free_port
from tests.mailstack.smtp import SubmissionServer


@pytest.fixture
async def worker(services: Services, smtp: SubmissionServer) -> AsyncIterator[SendWorker]:
    smtp.handler.reset()
    running = worker_for(services)
    running.start()
    try:
        yield running
    finally:
        await running.stop()


async def copy_settled(services: Services, box: Box, send_id: str, timeout: float = 20) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await services.sending.get(box.tenant_id, box.mailbox_id, send_id)
        if found.state is SendState.SENT and found.sent_copy is not SentCopyState.PENDING:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"send {send_id}: {found.state}, copy {found.sent_copy} after {timeout} s")
        await asyncio.sleep(0.05)


async def sent_folder(services: Services, box: Box) -> list[Any]:
    folders = {f.path for f in await services.mail.folders(box.tenant_id, box.mailbox_id)}
    if "Sent" not in folders:
        return []
    page = await services.mail.list_messages(box.tenant_id, box.mailbox_id, ListQuery(folder="Sent"))
    return page.items


async def test_the_sent_copy_is_stored_once_and_seen(
    services: Services, tenant: TenantHandle, dovecot: Dovecot, smtp: SubmissionServer, worker: SendWorker
) -> None:
    box = await make_box(services, dovecot, smtp.port, tenant_id=tenant.id)
    queued = (await services.sending.send(tenant.id, box.mailbox_id, hello(recipient()))).send
    done = await copy_settled(services, box, queued.id)
    assert done.sent_copy is SentCopyState.STORED and done.sent_copy_ref is not None
    [copy] = await sent_folder(services, box)
    assert copy.ref.encode() == done.sent_copy_ref and "seen" in copy.flags
    assert copy.envelope.message_id == queued.message_id
    assert (await row(services, queued.id)).raw is None
    assert len(arrived(smtp, queued.message_id)) == 1


async def test_skipped_where_the_provider_files_it_unless_always(
    services: Services, tenant: TenantHandle, dovecot: Dovecot, smtp: SubmissionServer, worker: SendWorker
) -> None:
    gmail_like = await make_box(services, dovecot, smtp.port, tenant_id=tenant.id, provider_id="gmail")
    auto = (await services.sending.send(tenant.id, gmail_like.mailbox_id, hello(recipient()))).send
    assert auto.sent_copy is SentCopyState.PENDING
    assert (await copy_settled(services, gmail_like, auto.id)).sent_copy is SentCopyState.SKIPPED
    assert await sent_folder(services, gmail_like) == []

    forced = await make_box(
        services,
        dovecot,
        smtp.port,
        tenant_id=tenant.id,
        provider_id="gmail",
        sending=SendingSettings(sent_copy=SentCopyMode.ALWAYS),
    )
    always = (await services.sending.send(tenant.id, forced.mailbox_id, hello(recipient()))).send
    assert (await copy_settled(services, forced, always.id)).sent_copy is SentCopyState.STORED
    assert len(await sent_folder(services, forced)) == 1


async def test_a_failing_copy_never_holds_up_sending(
    services: Services, tenant: TenantHandle, dovecot: Dovecot, smtp: SubmissionServer, worker: SendWorker
) -> None:
    unreachable = await make_box(services, dovecot, smtp.port, tenant_id=tenant.id, imap_port=free_port())
    first = (await services.sending.send(tenant.id, unreachable.mailbox_id, hello(recipient()))).send
    second = (await services.sending.send(tenant.id, unreachable.mailbox_id, hello(recipient()))).send
    for send in (first, second):
        assert (await settled(services, unreachable, send.id)).state is SendState.SENT
    for _ in range(200):
        stored = await row(services, first.id)
        if stored.sent_copy_attempts >= 1:
            break
        await asyncio.sleep(0.05)
    assert stored.state == "sent" and stored.sent_copy == "pending" and stored.sent_copy_attempts == 1
    assert stored.raw is not None  # kept for the next try
    assert stored.next_attempt_at is not None and stored.claimed_by is None
