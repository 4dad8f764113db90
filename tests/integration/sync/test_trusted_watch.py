"""The watcher trusts what the checks trust (:mod:`mailport.net.trust`): a mailbox whose server
presents a self-signed certificate is watched once that certificate is pinned on it (stored and
read back on SQLite and PostgreSQL), a different certificate stops it with ``certificate_changed``
in its health, and changing the pin restarts the watcher with the new trust."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mailport.crypto import Secret
from mailport.mailboxes.models import AuthMethod, NewMailbox, Security, ServerSettings
from mailport.mailboxes.schemas import MailboxUpdate, ServerIn
from mailport.net.trust import Certificate
from tests.fixtures.tls import Pem
from tests.integration.sync.conftest import Bed, make_message, wait_for


async def test_a_pinned_mailbox_is_watched_and_a_changed_certificate_is_reported(
    bed: Bed, pki: dict[str, Pem]
) -> None:
    bed_pem = Path(bed.dovecot.ca_file).read_text()
    other = Certificate.from_pem(pki["self_signed"].cert.read_text())
    imap = ServerSettings("127.0.0.1", bed.dovecot.imaps_port, Security.SSL, trusted_certificate=other)
    mailbox = await bed.services.mailboxes.create(
        bed.tenant_id,
        NewMailbox(email=bed.user, auth_method=AuthMethod.PASSWORD, imap=imap, password=Secret(bed.password)),
    )
    stored = await bed.services.mailboxes.get(bed.tenant_id, mailbox.id)
    assert stored.imap.trusted_certificate == other  # the pin round-trips through the store
    orchestrator = bed.orchestrator()
    await orchestrator.start()
    try:

        async def changed() -> str | None:
            current = await bed.services.mailboxes.get(bed.tenant_id, mailbox.id)
            error = current.health.last_error or ""
            return (
                error if current.health.status.value == "error" and "certificate_changed" in error else None
            )

        error = await wait_for(changed, timeout=10)
        assert Certificate.from_pem(bed_pem).sha256 in error and other.sha256 in error

        # Trust the server's real certificate: the watcher restarts with it and ingests.
        await bed.services.mailboxes.update(
            bed.tenant_id,
            mailbox.id,
            MailboxUpdate(
                imap=ServerIn(
                    host="127.0.0.1",
                    port=bed.dovecot.imaps_port,
                    security=Security.SSL,
                    trusted_certificate=bed_pem,
                )
            ),
        )
        await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message("over a pinned connection"))
        got = await wait_for(lambda: bed.received(mailbox.id), timeout=15)
        assert got[0].payload["subject"] == "over a pinned connection"
        current = await bed.services.mailboxes.get(bed.tenant_id, mailbox.id)
        assert current.health.status.value == "connected"
        assert current.imap.trusted_certificate is not None
        assert current.imap.trusted_certificate.sha256 == Certificate.from_pem(bed_pem).sha256
    finally:
        await orchestrator.stop()
