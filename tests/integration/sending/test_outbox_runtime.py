"""The send worker as a part of the runtime: started by ``serve``'s and ``worker``'s runtime,
woken at once by a send queued in its process, stopped (transports closed) with the rest."""

from __future__ import annotations

import asyncio
import dataclasses

from mailport.bootstrap import Services
from mailport.runtime import Runtime
from mailport.sending.models import SendState
from tests.fixtures.api import TenantHandle
from tests.integration.sending.outbox_bed import make_box
from tests.integration.sending.test_outbox_worker import NO_COPY, arrived, hello, recipient, settled
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer


def test_which_processes_send(services: Services) -> None:
    assert Runtime(services).wants_sending  # mailport worker
    assert Runtime.for_app(services, serve=True).wants_sending  # mailport serve
    assert not Runtime.for_app(services, serve=False).wants_sending  # an embedded app
    api_only = services.settings.model_copy(update={"watchers": False})
    assert not Runtime.for_app(dataclasses.replace(services, settings=api_only), serve=True).wants_sending


async def test_the_runtime_sends_what_its_process_queues(
    services: Services, tenant: TenantHandle, dovecot: Dovecot, smtp: SubmissionServer
) -> None:
    smtp.handler.reset()
    box = await make_box(services, dovecot, smtp.port, tenant_id=tenant.id, sending=NO_COPY)
    # a poll far away: only the in-process wake-up can make the send go out quickly
    services = dataclasses.replace(
        services, settings=services.settings.model_copy(update={"send_poll_seconds": 30})
    )
    runtime = Runtime(services, watchers=False, delivery=False, janitor=False)
    await runtime.start()
    try:
        assert runtime.sender is not None and runtime.sender.running
        await asyncio.sleep(0.2)  # the first pass has run: the next one is a poll away
        started = asyncio.get_running_loop().time()
        queued = (await services.sending.send(tenant.id, box.mailbox_id, hello(recipient()))).send
        sent = await settled(services, box, queued.id)
        assert sent.state is SendState.SENT and len(arrived(smtp, queued.message_id)) == 1
        assert asyncio.get_running_loop().time() - started < 5
    finally:
        await runtime.stop()
    assert not runtime.sender.running
    await asyncio.sleep(0.5)
    assert smtp.handler.active == 0  # the kept SMTP session was closed on stop
