"""OAuth for the API connectors (``gmail_api``, ``graph``) over HTTP, against the local
authorization server: the scopes asked for follow the connector, the state carries it to the
callback, the mailbox is created with it (no IMAP/SMTP servers), a grant without the
connector's scope is refused, the device flow and ``POST /v1/mailboxes`` take it too, and a
refresh asks Microsoft for the connector's scopes, and a device flow completed by another
instance keeps the connector it was started for."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from mailport.bootstrap import build
from mailport.clock import utc_now
from mailport.config import Settings
from mailport.oauth.repository import DeviceFlowRecord
from mailport.services import Services
from tests.integration.oauth.conftest import PUBLIC_URL
from tests.integration.oauth.test_api import device_outcome, open_start_link
from tests.integration.oauth.test_device import approve

GMAIL_MODIFY = "https://www.googleapis.com/auth/gmail.modify"
IMAP_SERVER = {"host": "imap.example.com", "port": 993, "security": "ssl"}
GRAPH_SCOPES = ("https://graph.microsoft.com/Mail.ReadWrite", "https://graph.microsoft.com/Mail.Send")


pytestmark = pytest.mark.usefixtures("api_connectors_registered")


def _scopes(url: str) -> list[str]:
    return parse_qs(urlsplit(url).query)["scope"][0].split()


async def _sign_in(
    client: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    provider: str,
    *,
    consent: Callable[[list[str]], list[str]] = lambda scopes: scopes,
    **body: object,
) -> tuple[list[str], httpx.Response]:
    """authorize → start link → the provider (where ``consent`` may untick scopes) → callback."""
    response = await client.post(f"/v1/oauth/{provider}/authorize", json=body)
    assert response.status_code == 200, response.text
    provider_url = await open_start_link(browser, response.json()["authorization_url"])
    asked = _scopes(provider_url)
    parts = urlsplit(provider_url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["scope"] = " ".join(consent(asked))
    async with httpx.AsyncClient() as provider_site:
        redirect = await provider_site.get(urlunsplit(parts._replace(query=urlencode(query))))
    callback = redirect.headers["location"]
    assert callback.startswith(f"{PUBLIC_URL}/v1/oauth/{provider}/callback?")
    return asked, await browser.get(callback.removeprefix(PUBLIC_URL))


async def test_google_with_gmail_api_asks_for_gmail_modify_and_creates_an_api_mailbox(client, browser):
    email = f"g{uuid.uuid4().hex[:8]}@example.test"
    asked, done = await _sign_in(client, browser, "google", email=email, connector="gmail_api")
    assert GMAIL_MODIFY in asked and "https://mail.google.com/" not in asked
    assert done.status_code == 200, done.text
    mailbox = done.json()["mailbox"]
    assert mailbox["connector"] == "gmail_api" and mailbox["auth_method"] == "oauth2"
    assert mailbox["provider_id"] == "google" and mailbox["imap"] is None and mailbox["smtp"] is None
    assert GMAIL_MODIFY in mailbox["oauth"]["scopes"]
    shown = (await client.get(f"/v1/mailboxes/{mailbox['id']}")).json()
    assert shown["connector"] == "gmail_api" and shown["imap"] is None


async def test_microsoft_with_graph_asks_for_graph_scopes(client, browser):
    email = f"m{uuid.uuid4().hex[:8]}@example.test"
    asked, done = await _sign_in(client, browser, "microsoft", email=email, connector="graph")
    assert set(GRAPH_SCOPES) <= set(asked) and "offline_access" in asked
    assert not any("outlook.office.com" in scope for scope in asked)
    mailbox = done.json()["mailbox"]
    assert mailbox["connector"] == "graph" and mailbox["provider_id"] == "microsoft"
    assert mailbox["imap"] is None and mailbox["smtp"] is None


async def test_imap_stays_the_default(client, browser):
    asked, done = await _sign_in(client, browser, "google", email=f"i{uuid.uuid4().hex[:8]}@example.test")
    assert "https://mail.google.com/" in asked and GMAIL_MODIFY not in asked
    mailbox = done.json()["mailbox"]
    assert mailbox["connector"] == "imap" and mailbox["imap"] is not None


async def test_an_unticked_api_scope_is_refused_clearly(client, browser):
    _, done = await _sign_in(
        client,
        browser,
        "microsoft",
        email=f"u{uuid.uuid4().hex[:8]}@example.test",
        connector="graph",
        consent=lambda scopes: [s for s in scopes if not s.endswith("Mail.Send")],
    )
    assert done.status_code == 403, done.text
    body = done.json()
    assert body["error"] == "oauth_denied" and "Mail.Send" in body["detail"]
    assert "Mail.ReadWrite" not in body["detail"]  # only what is missing is named
    assert (await client.get("/v1/mailboxes")).json()["items"] == []


REFUSED_SIGN_INS = [
    ("google", "graph", "connector: graph needs provider microsoft"),
    ("microsoft", "gmail_api", "connector: gmail_api needs provider google"),
    ("google", "pop9", "connector: unknown connector 'pop9'"),
]


async def test_a_connector_the_provider_does_not_offer_is_refused(client):
    for provider, connector, words in REFUSED_SIGN_INS:
        response = await client.post(f"/v1/oauth/{provider}/authorize", json={"connector": connector})
        assert response.status_code == 422, response.text
        assert response.json()["error"] == "invalid_input" and response.json()["detail"] == words
        assert response.json()["field"] == "connector"
    device = await client.post("/v1/oauth/microsoft/device", json={"connector": "gmail_api"})
    assert device.status_code == 422 and "needs provider google" in device.json()["detail"]


async def test_a_reconnect_keeps_the_mailbox_connector(client, browser):
    email = f"r{uuid.uuid4().hex[:8]}@example.test"
    _, done = await _sign_in(client, browser, "google", email=email, connector="gmail_api")
    mailbox_id = done.json()["mailbox"]["id"]
    assert (await client.delete(f"/v1/mailboxes/{mailbox_id}/oauth")).status_code == 200
    asked, again = await _sign_in(client, browser, "google", mailbox_id=mailbox_id)
    assert GMAIL_MODIFY in asked  # the mailbox's connector, not the default
    assert again.json()["created"] is False and again.json()["mailbox"]["connector"] == "gmail_api"
    switch = await client.post(
        "/v1/oauth/google/authorize", json={"mailbox_id": mailbox_id, "connector": "imap"}
    )
    assert switch.status_code == 422 and "uses the gmail_api connector" in switch.json()["detail"]
    # the same address signed in for IMAP is not silently turned into a second mailbox
    _, other = await _sign_in(client, browser, "google", email=email)
    assert other.status_code == 422 and "read by the gmail_api connector" in other.json()["detail"]


async def test_device_sign_in_for_graph(client, idp):
    started = await client.post("/v1/oauth/microsoft/device", json={"connector": "graph"})
    assert started.status_code == 201, started.text
    flow = started.json()
    email = f"d{uuid.uuid4().hex[:8]}@example.test"
    approve(idp, flow["user_code"], email=email)
    status = await device_outcome(client, flow["flow_id"])
    assert status["status"] == "complete", status
    mailbox = (await client.get(f"/v1/mailboxes/{status['mailbox_id']}")).json()
    assert mailbox["connector"] == "graph" and mailbox["imap"] is None
    assert set(GRAPH_SCOPES) <= set(mailbox["oauth"]["scopes"])


async def test_create_an_api_mailbox_then_connect_it(client, browser):
    email = f"c{uuid.uuid4().hex[:8]}@example.test"
    made = await client.post(
        "/v1/mailboxes", json={"email": email, "auth_method": "oauth2", "connector": "graph"}
    )
    assert made.status_code == 201, made.text
    assert made.json()["connector"] == "graph" and made.json()["provider_id"] == "microsoft"
    asked, done = await _sign_in(client, browser, "microsoft", mailbox_id=made.json()["id"])
    assert set(GRAPH_SCOPES) <= set(asked)
    assert done.json()["created"] is False and done.json()["mailbox"]["oauth"] is not None


REFUSED_MAILBOXES = [
    (
        {"connector": "graph", "auth_method": "password", "password": "x"},
        "auth_method",
        "signs in with oauth2",
    ),
    (
        {"connector": "gmail_api", "auth_method": "oauth2", "imap": IMAP_SERVER},
        "imap",
        "takes no IMAP settings",
    ),
    ({"connector": "pop9", "auth_method": "oauth2"}, "connector", "unknown connector 'pop9'"),
    ({"auth_method": "oauth2"}, "imap", "the imap connector needs IMAP settings"),
]


async def test_creating_a_mailbox_checks_its_connector(client):
    for body, field, words in REFUSED_MAILBOXES:
        made = await client.post("/v1/mailboxes", json={"email": "v@example.test", **body})
        assert made.status_code == 422, made.text
        assert made.json()["field"] == field and words in made.json()["detail"]
    assert (await client.get("/v1/mailboxes")).json()["items"] == []


async def test_a_graph_refresh_asks_for_the_graph_scopes(client, browser, api_services, idp):
    _, done = await _sign_in(
        client, browser, "microsoft", email=f"t{uuid.uuid4().hex[:8]}@example.test", connector="graph"
    )
    mailbox_id = done.json()["mailbox"]["id"]
    tokens = api_services.oauth.oauth.tokens
    before = await tokens.get_access_token(mailbox_id)
    after = await tokens.force_refresh(mailbox_id, rejected=before)
    assert after != before
    claims = idp.state.lookup(after.reveal())
    assert claims is not None and set(GRAPH_SCOPES) <= set(claims["scope"].split())


async def test_testing_an_api_mailbox_without_tokens_says_so(client):
    made = await client.post(
        "/v1/mailboxes", json={"email": "k@example.test", "auth_method": "oauth2", "connector": "gmail_api"}
    )
    tested = await client.post(f"/v1/mailboxes/{made.json()['id']}/test")
    assert tested.status_code == 422 and "has no token" in tested.json()["detail"]
    assert "POST /v1/oauth/{provider}/authorize" in tested.json()["hint"]


async def _finished(services: Services, tenant_id: str, flow_id: str) -> DeviceFlowRecord:
    """The flow once a poller is done with it (still pending after 15 s: returned as it is)."""
    record = await services.oauth.device_status(tenant_id, flow_id)
    for _ in range(150):
        if record.status != "pending":
            break
        await asyncio.sleep(0.1)
        record = await services.oauth.devices.flows.get(tenant_id, flow_id)
    return record


async def test_a_device_flow_completed_by_another_instance_keeps_its_connector(
    api_services: Services, api_settings: Settings, api_tenant, idp
):
    """The connector is stored with the flow: the instance that completes it creates the
    mailbox the flow was started for, even where the granted scopes suggest another one (the
    user's consent covered Graph too: judged by scopes, this IMAP flow would become a Graph
    mailbox)."""
    email = f"r{uuid.uuid4().hex[:8]}@example.test"
    first = api_services.oauth
    record = await first.start_device(api_tenant.id, "microsoft", email=email, connector="imap")
    await first.devices.aclose()  # this instance stops polling; its lease lasts until it runs out
    device = next(d for d in idp.state.devices.values() if d["user_code"] == record.user_code)
    device["scope"] = f"{device['scope']} {' '.join(GRAPH_SCOPES)}"
    approve(idp, record.user_code, email=email)

    def later() -> datetime:  # the first instance's polling lease has run out
        return utc_now() + timedelta(minutes=5)

    second = await build(api_settings, migrate=False, clock=later)  # another instance, same database
    try:
        done = await _finished(second, api_tenant.id, record.id)
    finally:
        await second.aclose()
    assert done.status == "complete" and done.connector == "imap", done
    assert done.mailbox_id is not None
    mailbox = await api_services.mailboxes.get(api_tenant.id, done.mailbox_id)
    assert mailbox.connector == "imap" and mailbox.imap is not None
    assert mailbox.oauth is not None and set(GRAPH_SCOPES) <= set(mailbox.oauth.scopes)
