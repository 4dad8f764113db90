"""``Services.transport``: the mailbox's transport built with the service's token manager, trust and
host guard, against the bed (local authorization server, aiosmtpd submission, Dovecot)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from mailport.bootstrap import Services
from mailport.clock import utc_now
from mailport.crypto import Secret
from mailport.errors import SmtpNotConfiguredError
from mailport.mailboxes.models import AuthMethod, NewMailbox, OAuthGrant, Security, ServerSettings
from mailport.sending.smtp_transport import SmtpTransport
from mailport.sending.transport import Outgoing
from tests.conftest import issue_token
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
