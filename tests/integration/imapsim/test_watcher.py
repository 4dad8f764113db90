"""A mailbox watched by the orchestrator, on Dovecot and on the simulator: connected and idling,
a delivered message becomes exactly one ``message.received`` event, and after a reconnect the
watcher catches up what arrived meanwhile without repeating anything."""

from __future__ import annotations

import asyncio

from mailport.bootstrap import Services
from mailport.crypto import Secret
from mailport.mailboxes.models import AuthMethod, NewMailbox, ProcessingSettings, Security, ServerSettings
from mailport.sync import Orchestrator, WatcherOptions
from tests.integration.imapsim.conftest import MailServer
from tests.integration.sync.conftest import all_events, make_message, wait_for


async def test_the_watcher_idles_ingests_once_and_catches_up_after_a_restart(
    mail_server: MailServer, services: Services
) -> None:
    tenant, _key = await services.tenants.create_tenant("imapsim")
    mailbox = await services.mailboxes.create(
        tenant.id,
        NewMailbox(
            email=mail_server.user,
            auth_method=AuthMethod.PASSWORD,
            imap=ServerSettings("127.0.0.1", mail_server.port, Security.NONE),
            password=Secret(mail_server.password),
            settings=ProcessingSettings(check_interval=60),
        ),
    )
    options = WatcherOptions(backoff_base=0.2, backoff_cap=1.0, auth_retry_seconds=600)

    async def subjects() -> list[str]:
        found = await all_events(services, mailbox_id=mailbox.id, type="message.received")
        return [str(e.payload.get("subject")) for e in found]

    async def watch_until(subject: str, *, deliver: bool) -> None:
        orchestrator = Orchestrator(services, reconcile_interval=0.2, options=options)
        await orchestrator.start()
        try:

            async def idling() -> bool:
                watcher = orchestrator.watchers.get(mailbox.id)
                return watcher is not None and watcher.status.state == "connected" and watcher.status.push

            async def seen() -> bool:
                return subject in await subjects()

            await wait_for(idling, timeout=10)
            if deliver:
                await asyncio.to_thread(mail_server.deliver, make_message(subject))
            await wait_for(seen, timeout=10)
        finally:
            await orchestrator.stop()

    await watch_until("first", deliver=True)
    # delivered while nobody watches: the next watcher catches it up
    await asyncio.to_thread(mail_server.deliver, make_message("while away"))
    await watch_until("while away", deliver=False)
    assert await subjects() == ["first", "while away"]
