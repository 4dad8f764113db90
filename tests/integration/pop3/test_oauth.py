"""OAuth POP3 mailboxes: the watcher signs in with XOAUTH2 using the token manager's tokens
(Dovecot checks them at the local authorization server), and a token the server refuses is
refreshed once and sent again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailport.bootstrap import Services
from mailport.crypto import Secret
from mailport.mailboxes.models import AuthMethod, Mailbox, NewMailbox, OAuthGrant, Security, ServerSettings
from mailport.sync import Orchestrator
from tests.conftest import issue_token
from tests.integration.sync.conftest import all_events, make_message, wait_for
from tests.integration.sync.test_oauth_ingest import settings  # noqa: F401  the OAuth bed's settings
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.idp import MockIdP


async def _mailbox(services: Services, dovecot: Dovecot, email: str, access: str, refresh: str) -> Mailbox:
    tenant, _ = await services.tenants.create_tenant("pop3-oauth")
    return await services.mailboxes.create(
        tenant.id,
        NewMailbox(
            email=email,
            auth_method=AuthMethod.OAUTH2,
            imap=None,
            connector="pop3",
            pop3=ServerSettings("127.0.0.1", dovecot.pop3s_port, Security.SSL),
            oauth=OAuthGrant(
                provider="google",
                access_token=Secret(access),
                refresh_token=Secret(refresh),
                expires_at=datetime.now(UTC) + timedelta(hours=1),  # mailport believes it valid
                scopes=("https://mail.google.com/",),
                connected_email=email,
            ),
        ),
    )


async def _delivered(services: Services, dovecot: Dovecot, mailbox: Mailbox, subject: str) -> str:
    orchestrator = Orchestrator(services, reconcile_interval=0.2)
    await orchestrator.start()
    try:
        await wait_for(
            lambda: all_events(services, mailbox_id=mailbox.id, type="mailbox.connected"), timeout=10
        )
        dovecot.deliver(mailbox.email, make_message(subject))
        orchestrator.watchers[mailbox.id].wake()
        got = await wait_for(
            lambda: all_events(services, mailbox_id=mailbox.id, type="message.received"), timeout=10
        )
    finally:
        await orchestrator.stop()
    return str(got[0].payload["subject"])


async def test_a_pop3_mailbox_is_watched_with_xoauth2(
    services: Services, dovecot: Dovecot, oauth_user: tuple[str, dict[str, object]]
) -> None:
    email, token = oauth_user
    mailbox = await _mailbox(
        services, dovecot, email, str(token["access_token"]), str(token["refresh_token"])
    )
    assert await _delivered(services, dovecot, mailbox, "pop3 via oauth") == "pop3 via oauth"


async def test_a_refused_token_is_refreshed_once(
    services: Services, dovecot: Dovecot, idp: MockIdP, oauth_user: tuple[str, dict[str, object]]
) -> None:
    email, token = oauth_user
    expired = str(issue_token(idp, email, expires_in=-1)["access_token"])  # Dovecot refuses it
    mailbox = await _mailbox(services, dovecot, email, expired, str(token["refresh_token"]))
    assert await _delivered(services, dovecot, mailbox, "after a refresh") == "after a refresh"
    stored = await services.mailboxes.repository.get_by_id(mailbox.id)
    assert stored.oauth is not None and stored.oauth.access_token is not None
    assert stored.oauth.access_token.reveal() != expired
    # refreshed and sent again within the same connect: no failure was recorded
    assert await all_events(services, mailbox_id=mailbox.id, type="mailbox.error") == []
