"""OAuth over HTTP: authorize → provider → callback → mailbox, on SQLite and PostgreSQL, then an
IMAP login and an SMTP send with the stored token; device sign-in; tenant apps; disconnect."""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import uuid
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mailport.errors import OAuthInvalidGrantError
from tests.integration.oauth.conftest import PUBLIC_URL
from tests.integration.oauth.test_device import approve


async def open_start_link(browser: httpx.AsyncClient, authorization_url: str) -> str:
    """The browser opens mailport's start link: it gets the binding cookie and the provider's URL."""
    assert authorization_url.startswith(f"{PUBLIC_URL}/v1/oauth/")
    started = await browser.get(authorization_url.removeprefix(PUBLIC_URL))
    assert started.status_code == 303, started.text
    assert "httponly" in started.headers["set-cookie"].lower()
    assert "samesite=lax" in started.headers["set-cookie"].lower()
    return started.headers["location"]


async def sign_in(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, provider: str, **body: object
) -> str:
    """POST authorize, open the link in ``browser``, let the provider answer; the callback path+query."""
    response = await client.post(f"/v1/oauth/{provider}/authorize", json=body)
    assert response.status_code == 200, response.text
    started = response.json()
    assert set(started) == {"authorization_url", "state", "expires_in"}
    provider_url = await open_start_link(browser, started["authorization_url"])
    async with httpx.AsyncClient() as provider_site:
        redirect = await provider_site.get(provider_url)
    location = redirect.headers["location"]
    assert location.startswith(f"{PUBLIC_URL}/v1/oauth/{provider}/callback?")
    return location.removeprefix(PUBLIC_URL)


async def device_outcome(client: httpx.AsyncClient, flow_id: str) -> dict[str, object]:
    """The device flow's state once the service's poller is done with it (pending after 10 s)."""
    status: dict[str, object] = {}
    for _ in range(100):
        status = (await client.get(f"/v1/oauth/device/{flow_id}")).json()
        if status["status"] != "pending":
            break
        await asyncio.sleep(0.1)
    return status


def xoauth2(user: str, token: str) -> bytes:
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


async def test_connect_over_http_then_imap_login_and_smtp_send(
    client, browser, api_services, dovecot, smtp, tls_ctx, secret_watch
):
    callback = await sign_in(client, browser, "microsoft", email="frank@example.test", purpose="support")
    response = await browser.get(callback)
    assert response.status_code == 200, response.text
    body = response.json()
    mailbox = body["mailbox"]
    assert body["created"] is True and body["status"] == "connected"
    assert mailbox["email"] == "frank@example.test" and mailbox["auth_method"] == "oauth2"
    assert mailbox["purpose"] == "support" and mailbox["provider_id"] == "microsoft"
    assert mailbox["imap"]["port"] == dovecot.imaps_port and mailbox["smtp"]["port"] == smtp.tls_port
    assert mailbox["oauth"]["connected_email"] == "frank@example.test"
    assert "IMAP.AccessAsUser.All" in " ".join(mailbox["oauth"]["scopes"])

    token = await api_services.oauth.oauth.tokens.get_access_token(mailbox["id"])
    secret_watch.add(token.reveal())
    auth = xoauth2("frank@example.test", token.reveal())
    message = EmailMessage()
    message["From"] = message["To"] = "frank@example.test"
    message["Subject"] = "sent with the stored token"
    message.set_content("hello")
    with smtplib.SMTP_SSL("127.0.0.1", smtp.tls_port, context=tls_ctx) as client_smtp:
        client_smtp.ehlo()
        client_smtp.auth("XOAUTH2", lambda challenge=None: auth.decode())
        client_smtp.send_message(message)
    imap = imaplib.IMAP4_SSL("127.0.0.1", dovecot.imaps_port, ssl_context=tls_ctx)
    assert imap.authenticate("XOAUTH2", lambda _: auth)[0] == "OK"
    imap.select("INBOX")
    assert imap.search(None, "SUBJECT", '"sent with the stored token"')[1][0].split()
    imap.logout()


async def test_return_url_redirects_and_replay_is_refused(client, browser):
    callback = await sign_in(client, browser, "google", return_url="https://app.example/connected?step=2")
    first = await browser.get(callback)
    assert first.status_code == 303
    target = urlsplit(first.headers["location"])
    assert (target.netloc, target.path) == ("app.example", "/connected")
    query = parse_qs(target.query)
    assert query["status"] == ["connected"] and query["step"] == ["2"] and query["mailbox_id"]
    again = await browser.get(callback)
    assert again.status_code == 303
    assert parse_qs(urlsplit(again.headers["location"]).query)["error"] == ["oauth_state_replayed"]


async def test_tampered_state_gets_a_clear_page_or_error_body(client, browser):
    callback = await sign_in(client, browser, "google")
    path, _, query = callback.partition("?")
    params = {k: v[0] for k, v in parse_qs(query).items()}
    params["state"] = params["state"][:-6] + "AAAAAA"
    page = await browser.get(path, params=params, headers={"Accept": "text/html"})
    assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
    assert "oauth_state_invalid" in page.text and "start the connection again" in page.text
    as_json = await browser.get(path, params=params)
    assert as_json.status_code == 400 and as_json.json()["error"] == "oauth_state_invalid"


async def test_provider_error_is_shown_plainly(client, browser):
    callback = await sign_in(client, browser, "microsoft", email="deny@example.test")
    response = await browser.get(callback)
    assert response.status_code == 403
    assert response.json()["error"] == "oauth_denied" and "access_denied" in response.json()["detail"]


async def test_reconnect_updates_the_same_mailbox(client, browser, api_services, api_tenant):
    first = (await browser.get(await sign_in(client, browser, "google", email="gina@example.test"))).json()
    mailbox_id = first["mailbox"]["id"]
    disconnected = await client.delete(f"/v1/mailboxes/{mailbox_id}/oauth")
    assert disconnected.status_code == 200 and disconnected.json()["mailbox"]["status"] == "reauth_required"
    again = await browser.get(await sign_in(client, browser, "google", mailbox_id=mailbox_id))
    body = again.json()
    assert body["created"] is False and body["mailbox"]["id"] == mailbox_id
    assert body["mailbox"]["status"] == "pending" and body["mailbox"]["oauth"] is not None
    mailbox = await api_services.mailboxes.get(api_tenant.id, mailbox_id)
    assert mailbox.token_version == 2  # created at 0; disconnect and reconnect each write tokens


async def test_signing_in_as_an_address_in_another_case_reconnects_that_mailbox(client, browser):
    imap = {"host": "imap.example.com", "port": 993, "security": "ssl"}
    made = await client.post(
        "/v1/mailboxes", json={"email": "HANA@Example.test", "auth_method": "oauth2", "imap": imap}
    )
    assert made.status_code == 201, made.text
    body = (await browser.get(await sign_in(client, browser, "google", email="hana@example.test"))).json()
    assert body["created"] is False and body["mailbox"]["id"] == made.json()["id"]
    assert body["mailbox"]["oauth"]["connected_email"] == "hana@example.test"


async def test_device_sign_in_over_http(client, idp):
    started = await client.post("/v1/oauth/microsoft/device", json={"purpose": "headless"})
    assert started.status_code == 201, started.text
    flow = started.json()
    assert flow["interval"] == 1 and flow["verification_uri"].endswith("/device") and flow["user_code"]
    status = (await client.get(f"/v1/oauth/device/{flow['flow_id']}")).json()
    assert status["status"] == "pending"
    approve(idp, flow["user_code"], email="hank@example.test")
    status = await device_outcome(client, flow["flow_id"])
    assert status["status"] == "complete", status
    mailbox = (await client.get(f"/v1/mailboxes/{status['mailbox_id']}")).json()
    assert mailbox["email"] == "hank@example.test" and mailbox["purpose"] == "headless"


async def test_device_denied_and_google_refused(client, idp):
    flow = (await client.post("/v1/oauth/microsoft/device", json={})).json()
    approve(idp, flow["user_code"], deny=True)
    for _ in range(60):
        status = (await client.get(f"/v1/oauth/device/{flow['flow_id']}")).json()
        if status["status"] != "pending":
            break
        await asyncio.sleep(0.1)
    assert status["status"] == "denied" and "access_denied" in status["error"]
    google = await client.post("/v1/oauth/google/device", json={})
    assert google.status_code == 422 and google.json()["error"] == "oauth_device_flow_unsupported"
    assert "https://mail.google.com/" in google.json()["detail"]


async def test_tenant_app_is_used_and_its_secret_never_returned(client, browser, secret_watch):
    secret_watch.add("tenant-s3cret-value")
    app = {"client_id": "x", "client_secret": "tenant-s3cret-value"}
    put = await client.put("/v1/oauth-apps/google", json=app)
    assert put.status_code == 200 and put.json()["has_secret"] is True
    assert put.json()["redirect_uri"] == f"{PUBLIC_URL}/v1/oauth/google/callback"
    public = await client.put("/v1/oauth-apps/google", json={"client_id": "public-client"})
    assert public.json()["has_secret"] is False
    listed = await client.get("/v1/oauth-apps")
    assert [a["client_id"] for a in listed.json()] == ["public-client"]

    response = await client.post("/v1/oauth/google/authorize", json={})
    assert "client_id=public-client" in await open_start_link(browser, response.json()["authorization_url"])
    connected = await browser.get(await sign_in(client, browser, "google", email="ivy@example.test"))
    assert connected.status_code == 200 and connected.json()["mailbox"]["email"] == "ivy@example.test"

    assert (await client.delete("/v1/oauth-apps/google")).status_code == 204
    assert (await client.delete("/v1/oauth-apps/google")).status_code == 404
    unknown = await client.put("/v1/oauth-apps/aol", json={"client_id": "x"})
    assert unknown.status_code == 404 and unknown.json()["error"] == "oauth_provider_unknown"


async def test_disconnect_revokes_at_google_and_erases(client, browser, api_services, api_tenant, idp):
    mailbox_id = (await browser.get(await sign_in(client, browser, "google"))).json()["mailbox"]["id"]
    before = await api_services.mailboxes.get(api_tenant.id, mailbox_id)
    assert before.oauth is not None and before.oauth.refresh_token is not None
    response = await client.delete(f"/v1/mailboxes/{mailbox_id}/oauth")
    assert response.status_code == 200 and response.json()["revoked"] is True
    after = await api_services.mailboxes.get(api_tenant.id, mailbox_id)
    assert after.oauth is None and after.health.status.value == "reauth_required"
    oauth = api_services.oauth.oauth
    app = await oauth.apps.resolve("google", api_tenant.id)
    with pytest.raises(OAuthInvalidGrantError):
        await oauth.client.refresh(oauth.registry.get("google"), app, before.oauth.refresh_token)

    ms_id = (await browser.get(await sign_in(client, browser, "microsoft"))).json()["mailbox"]["id"]
    ms = await client.delete(f"/v1/mailboxes/{ms_id}/oauth")
    assert ms.json()["revoked"] is False and ms.json()["mailbox"]["oauth"] is None


async def test_callers_and_providers_are_checked(api_app, client):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api_app), base_url=PUBLIC_URL) as anon:
        assert (await anon.post("/v1/oauth/google/authorize", json={})).status_code == 401
    unknown = await client.post("/v1/oauth/aol/authorize", json={})
    assert unknown.status_code == 404 and unknown.json()["error"] == "oauth_provider_unknown"
    bad = await client.post("/v1/oauth/google/authorize", json={"return_url": "javascript:alert(1)"})
    assert bad.status_code == 422 and bad.json()["field"] == "return_url"
    missing = await client.post("/v1/oauth/google/authorize", json={"mailbox_id": "mbx_nope"})
    assert missing.status_code == 404


async def test_a_bad_app_tenant_is_a_422(client):
    response = await client.put("/v1/oauth-apps/microsoft", json={"client_id": "x", "tenant": "a/../b"})
    assert response.status_code == 422 and response.json()["field"] == "tenant"


async def test_one_device_poller_across_workers(client, api_services, api_settings, api_tenant, idp):
    from mailport.bootstrap import build

    flow = (await client.post("/v1/oauth/microsoft/device", json={"email": "lee@example.test"})).json()
    assert api_services.oauth.polling == {flow["flow_id"]}
    other = await build(api_settings, migrate=False)  # a second worker on the same database
    try:
        assert (await other.oauth.device_status(api_tenant.id, flow["flow_id"])).status == "pending"
        # both workers start a poller; whichever claims the polling lease second gives up (not
        # left to a fixed sleep: on a loaded machine the second may take a while to find out)
        for _ in range(100):
            polling = [w for w in (api_services, other) if flow["flow_id"] in w.oauth.polling]
            if len(polling) == 1:
                break
            await asyncio.sleep(0.05)
        assert len(polling) == 1, "exactly one worker polls the device flow"
        approve(idp, flow["user_code"], email="lee@example.test")
        for _ in range(60):
            record = await other.oauth.device_status(api_tenant.id, flow["flow_id"])
            if record.status != "pending":
                break
            await asyncio.sleep(0.1)
        assert record.status == "complete" and record.device_code is None
    finally:
        await other.aclose()


async def test_the_sign_in_is_bound_to_the_browser_that_started_it(client, browser, api_app, idp):
    """A sign-in link forwarded to someone else must not attach their mailbox to this tenant: the
    callback needs the start page's cookie (RFC 9700 4.7.1), and a start link binds one browser."""
    body = {"email": "olga@example.test", "return_url": "https://app.example/done"}
    started = (await client.post("/v1/oauth/google/authorize", json=body)).json()
    provider_url = await open_start_link(browser, started["authorization_url"])
    assert await open_start_link(browser, started["authorization_url"]) == provider_url  # a reload
    async with httpx.AsyncClient() as provider_site:
        callback = (await provider_site.get(provider_url)).headers["location"].removeprefix(PUBLIC_URL)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api_app), base_url=PUBLIC_URL) as other:
        stolen = await other.get(callback)
        assert stolen.status_code == 400 and stolen.json()["error"] == "oauth_browser_mismatch"
        page = await other.get(callback, headers={"Accept": "text/html"})
        assert page.status_code == 400 and "oauth_browser_mismatch" in page.text
        second = await other.get(started["authorization_url"].removeprefix(PUBLIC_URL))
        assert second.status_code == 400 and second.json()["error"] == "oauth_browser_mismatch"
        assert "set-cookie" not in second.headers
    mailboxes = (await client.get("/v1/mailboxes")).json()
    assert all(m["email"] != "olga@example.test" for m in mailboxes["items"])
    finished = await browser.get(callback)  # the browser that started it still can
    assert finished.status_code == 303
    assert finished.headers["location"].startswith("https://app.example/done?mailbox_id=")


async def test_reconnecting_as_another_account_is_refused_and_its_tokens_revoked(
    client, browser, api_services, api_tenant, idp
):
    owner, intruder = f"pat-{uuid.uuid4().hex[:6]}@example.test", f"quinn-{uuid.uuid4().hex[:6]}@example.test"
    first = (await browser.get(await sign_in(client, browser, "google", email=owner))).json()
    mailbox_id = first["mailbox"]["id"]
    before = await api_services.mailboxes.get(api_tenant.id, mailbox_id)
    idp.state.login_as[owner] = intruder  # at the provider, the browser is signed in as someone else
    try:
        response = await browser.get(await sign_in(client, browser, "google", mailbox_id=mailbox_id))
    finally:
        idp.state.login_as.pop(owner)
    assert response.status_code == 409 and response.json()["error"] == "oauth_account_mismatch"
    assert owner in response.json()["detail"] and response.json()["mailbox_id"] == mailbox_id
    after = await api_services.mailboxes.get(api_tenant.id, mailbox_id)
    assert after.token_version == before.token_version and after.oauth is not None
    assert after.oauth.connected_email == owner and after.email == owner
    assert after.oauth.access_token == before.oauth.access_token  # type: ignore[union-attr]
    revoked = [(r["email"], r["kind"]) for r in idp.state.revocations if r["email"] == intruder]
    assert revoked == [(intruder, "refresh_token")]


async def test_a_provider_without_openid_connects_with_the_given_address(
    client, browser, api_services, api_tenant, idp, dovecot, tls_ctx, secret_watch
):
    """No id_token, no userinfo: the address typed is used; the first IMAP login confirms it."""
    email = f"plain-{uuid.uuid4().hex[:6]}@example.test"
    response = await browser.get(await sign_in(client, browser, "plain", email=email))
    assert response.status_code == 200, response.text
    mailbox = response.json()["mailbox"]
    assert mailbox["email"] == email and mailbox["status"] == "pending"
    assert mailbox["oauth"]["connected_email"] is None  # the provider did not name the account
    token = await api_services.oauth.oauth.tokens.get_access_token(mailbox["id"])
    secret_watch.add(token.reveal())
    imap = imaplib.IMAP4_SSL("127.0.0.1", dovecot.imaps_port, ssl_context=tls_ctx)
    assert imap.authenticate("XOAUTH2", lambda _: xoauth2(email, token.reveal()))[0] == "OK"
    imap.logout()


async def test_a_provider_without_openid_and_no_address_revokes_what_it_got(client, browser, idp):
    before = len(idp.state.revocations)
    response = await browser.get(await sign_in(client, browser, "plain"))
    assert response.status_code == 502 and response.json()["error"] == "oauth_identity_invalid"
    assert "no address was given" in response.json()["detail"]
    revoked = idp.state.revocations[before:]
    assert [(r["kind"], r["client_id"]) for r in revoked] == [("refresh_token", "test-client")]


async def test_a_wrong_given_address_is_not_confirmed_by_the_first_login(
    client, browser, api_services, api_tenant, idp
):
    """The provider does not name the account and the user typed another address than the one
    they signed in with: the first login (here the mailbox test) refuses it; an `error` the user
    can see, not a mailbox silently attached to the wrong address, and not `reauth_required`."""
    typed, real = f"typed-{uuid.uuid4().hex[:6]}@example.test", f"real-{uuid.uuid4().hex[:6]}@example.test"
    idp.state.login_as[typed] = real
    try:
        response = await browser.get(await sign_in(client, browser, "plain", email=typed))
    finally:
        idp.state.login_as.pop(typed)
    mailbox_id = response.json()["mailbox"]["id"]
    result = await api_services.checks.test_mailbox(api_tenant.id, mailbox_id)
    assert not result.ok and result.failure is not None
    assert result.failure[1].step == "authentication"
    mailbox = await api_services.mailboxes.get(api_tenant.id, mailbox_id)
    assert mailbox.health.status.value == "error" and mailbox.oauth is not None
    assert mailbox.oauth.connected_email is None
