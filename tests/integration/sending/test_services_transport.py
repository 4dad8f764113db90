"""``Services.transport``: the mailbox's transport built with the service's token manager, trust and
host guard, against the bed (local authorization server, aiosmtpd submission, Dovecot)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from mailport.bootstrap import Services
from mailport.clock import utc_now
from mailport.connectors import registry as connector_registry
from mailport.connectors.base import Feature
from mailport.connectors.registry import ConnectorContext
from mailport.crypto import Secret
from mailport.errors import SmtpNotConfiguredError
from mailport.mailboxes.models import AuthMethod, Mailbox, NewMailbox, OAuthGrant, Security, ServerSettings
from mailport.sending.smtp_transport import SmtpTransport
from mailport.sending.transport import (
    Accepted,
    Committing,
    Outgoing,
    register_transport,
    registered_transport,
    transport_for,
    unregister_transport,
)
from tests.conftest import issue_token
from tests.connectors.fake import FakeServer
from tests.fixtures.api import TenantHandle
from tests.integration.oauth import conftest as oauth_bed
from tests.integration.oauth.test_tokens import refresh_count
from tests.mailstack.smtp import SubmissionServer

# The OAuth tests' service graph: providers at the local authorization server, mail at the bed.
bed_providers_file = oauth_bed.bed_providers_file
api_settings = oauth_bed.api_settings
api_services = oauth_bed.api_services
api_tenant = oauth_bed.api_tenant


async def noop() -> None:
    return None


async def test_xoauth2_with_the_token_manager_refreshes_a_refused_token_once(
    api_services: Services, api_tenant: TenantHandle, smtp: SubmissionServer, idp
) -> None:
    email = f"s{uuid.uuid4().hex[:10]}@example.test"
    issued = issue_token(idp, email)
    grant = OAuthGrant(
        provider="google",
        access_token=Secret("a-token-the-server-refuses"),  # not expired: only the server can tell
        refresh_token=Secret(str(issued["refresh_token"])),
        expires_at=utc_now() + timedelta(hours=1),
        scopes=tuple(str(issued["scope"]).split()),
        connected_email=email,
    )
    new = NewMailbox(
        email=email,
        auth_method=AuthMethod.OAUTH2,
        imap=ServerSettings("127.0.0.1", 993, Security.SSL),
        smtp=ServerSettings("127.0.0.1", smtp.tls_port, Security.SSL),
        provider_id="google",
        oauth=grant,
    )
    mailbox = await api_services.mailboxes.create(api_tenant.id, new)
    transport = api_services.transport(mailbox)
    assert isinstance(transport, SmtpTransport) and transport.files_sent_copy  # Google files it
    try:
        raw = f"From: {email}\r\nTo: ann@example.org\r\nSubject: via services\r\n\r\nhello\r\n".encode()
        accepted = await transport.transmit(
            Outgoing(raw=raw, sender=email, recipients=("ann@example.org",)), committing=noop
        )
    finally:
        await transport.aclose()
    assert accepted.reply.startswith("250")
    received = smtp.handler.messages[-1]
    assert received.mechanism == "XOAUTH2" and received.auth_user == email
    assert refresh_count(idp, email) == 1
    stored = await api_services.mailboxes.get(api_tenant.id, mailbox.id)
    assert stored.oauth is not None and stored.oauth.access_token != grant.access_token


async def test_a_mailbox_without_smtp_cannot_send(api_services: Services, api_tenant: TenantHandle) -> None:
    new = NewMailbox(
        email=f"n{uuid.uuid4().hex[:8]}@example.test",
        auth_method=AuthMethod.PASSWORD,
        imap=ServerSettings("127.0.0.1", 993, Security.SSL),
        password=Secret("pw"),
    )
    mailbox = await api_services.mailboxes.create(api_tenant.id, new)
    with pytest.raises(SmtpNotConfiguredError) as info:
        api_services.transport(mailbox)
    assert info.value.code == "smtp_not_configured"


class RecordingTransport:
    """A connector's own transport (as the Gmail API's and Graph's register themselves)."""

    files_sent_copy = True

    def __init__(self, mailbox: Mailbox, context: ConnectorContext) -> None:
        self.mailbox = mailbox
        self.context = context

    async def transmit(self, message: Outgoing, *, committing: Committing) -> Accepted:
        await committing()
        token = await self.context.token_source() if self.context.token_source else None
        return Accepted(f"sent with a token of {len(token.reveal()) if token else 0} characters")

    async def aclose(self) -> None:
        return None


async def test_an_api_connector_sends_through_its_registered_transport(
    api_services: Services, api_tenant: TenantHandle, idp
) -> None:
    email = f"g{uuid.uuid4().hex[:10]}@example.test"
    issued = issue_token(idp, email)
    added = [key for key in ("gmail_api",) if key not in connector_registry.keys()]
    if added:
        FakeServer().register("gmail_api", frozenset(Feature))
    before = registered_transport("gmail_api")  # the Gmail API's own, where this build has it
    unregister_transport("gmail_api")
    try:
        new = NewMailbox(
            email=email,
            auth_method=AuthMethod.OAUTH2,
            imap=None,
            connector="gmail_api",
            provider_id="google",
            oauth=OAuthGrant(
                provider="google",
                access_token=Secret(str(issued["access_token"])),
                refresh_token=Secret(str(issued["refresh_token"])),
                expires_at=utc_now() + timedelta(hours=1),
                scopes=("https://www.googleapis.com/auth/gmail.modify",),
                connected_email=email,
            ),
        )
        mailbox = await api_services.mailboxes.create(api_tenant.id, new)
        with pytest.raises(SmtpNotConfiguredError, match="the gmail_api connector no transport"):
            api_services.transport(mailbox)  # nothing registered for it yet: no SMTP either
        register_transport("gmail_api", RecordingTransport)
        transport = api_services.transport(mailbox)
        assert isinstance(transport, RecordingTransport) and transport.mailbox.id == mailbox.id
        # the same context as the mailbox's connector: its provider's API, the guard, its tokens
        context = transport.context
        assert context.api is not None and context.api.base_url == "https://gmail.googleapis.com"
        assert context.guard is api_services.guard and context.push is api_services.push_context
        accepted = await transport.transmit(
            Outgoing(raw=b"x", sender=email, recipients=("a@example.org",)), committing=noop
        )
        assert accepted.reply == f"sent with a token of {len(str(issued['access_token']))} characters"
        assert transport_for(mailbox, api_services.connector_context(mailbox)) is not None
    finally:
        unregister_transport("gmail_api")
        if before is not None:
            register_transport("gmail_api", before)
        for key in added:
            connector_registry.unregister(key)
    imap_box = await api_services.mailboxes.create(
        api_tenant.id,
        NewMailbox(
            email=f"i{uuid.uuid4().hex[:8]}@example.test",
            auth_method=AuthMethod.PASSWORD,
            imap=ServerSettings("127.0.0.1", 993, Security.SSL),
            smtp=ServerSettings("127.0.0.1", 465, Security.SSL),
            password=Secret("pw"),
        ),
    )
    assert isinstance(api_services.transport(imap_box), SmtpTransport)  # IMAP keeps SMTP
