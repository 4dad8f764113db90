"""A POP3 mailbox created for OAuth is connected with the provider's sign-in (POST
/v1/oauth/{provider}/authorize with its mailbox_id) and keeps its own POP3 server: the grant is
stored, no IMAP server is added, and the watcher signs in over POP3 with XOAUTH2."""

from __future__ import annotations

import httpx

from mailport.bootstrap import Services
from mailport.sync import Orchestrator
from tests.fixtures.api import TenantHandle
from tests.integration.oauth.conftest import (  # noqa: F401  the OAuth bed: its settings and clients
    api_app,
    api_services,
    api_settings,
    api_tenant,
    bed_providers_file,
    browser,
    client,
)
from tests.integration.oauth.test_api import sign_in
from tests.integration.sync.conftest import all_events, make_message, wait_for
from tests.mailstack.dovecot import Dovecot


async def test_a_pop3_mailbox_connected_with_oauth_keeps_its_server(
    client: httpx.AsyncClient,  # noqa: F811
    browser: httpx.AsyncClient,  # noqa: F811
    api_services: Services,  # noqa: F811
    api_tenant: TenantHandle,  # noqa: F811
    dovecot: Dovecot,
) -> None:
    email = "pat@example.test"
    created = await client.post(
        "/v1/mailboxes",
        json={
            "email": email,
            "auth_method": "oauth2",
            "connector": "pop3",
            "pop3": {"host": "127.0.0.1", "port": dovecot.pop3s_port, "security": "ssl"},
        },
    )
    assert created.status_code == 201, created.text
    mailbox_id = created.json()["id"]
    answer = await browser.get(await sign_in(client, browser, "google", mailbox_id=mailbox_id, email=email))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["created"] is False and body["mailbox"]["id"] == mailbox_id
    assert body["mailbox"]["imap"] is None and body["mailbox"]["pop3"]["port"] == dovecot.pop3s_port
    assert body["mailbox"]["oauth"] is not None
    orchestrator = Orchestrator(api_services, reconcile_interval=0.2)
    await orchestrator.start()
    try:
        await wait_for(lambda: all_events(api_services, mailbox_id=mailbox_id, type="mailbox.connected"))
        dovecot.deliver(email, make_message("pop3 after sign-in"))
        orchestrator.watchers[mailbox_id].wake()
        got = await wait_for(lambda: all_events(api_services, mailbox_id=mailbox_id, type="message.received"))
    finally:
        await orchestrator.stop()
    assert got[0].payload["subject"] == "pop3 after sign-in"
