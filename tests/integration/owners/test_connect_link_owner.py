"""A connect link carries its owner (issue 19): the hosted wizard creates the mailbox for the
link's user, and a user's token only ever issues links for itself."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from mailport.config import Settings
from tests.e2e.web.polling import finished
from tests.fixtures.api import SecretWatch, TenantHandle, api_client
from tests.integration.owners.jwts import set_verifier
from tests.mailstack.dovecot import Dovecot


@pytest.fixture
def settings(settings: Settings, dovecot: Dovecot) -> Settings:
    return settings.model_copy(update={"mail_ca_file": Path(dovecot.ca_file)})  # the bed's CA


CSRF = re.compile(r'"X-CSRF-Token": "([^"]+)"')
TESTED = re.compile(r'action="/connect/settings">.*?name="draft" value="([^"]+)"', re.S)
DRAFT = re.compile(r'name="draft" value="([^"]+)"')


async def run_wizard(app: FastAPI, url: str, dovecot: Dovecot) -> str:
    """A visitor opens the link and connects a Dovecot mailbox by hand; the new mailbox's id."""
    email, password = dovecot.dyn_user(f"linked{uuid.uuid4().hex[:8]}")
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))  # the public URL: secure cookies
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=origin) as browser:
        opened = await browser.get(urlsplit(url).path)
        assert opened.status_code == 303, opened.text
        token = CSRF.search((await browser.get("/connect")).text)
        assert token is not None
        browser.headers["X-CSRF-Token"] = token.group(1)
        page = await browser.post("/connect/method", data={"email": email})
        draft = DRAFT.search(page.text)
        assert page.status_code == 200 and draft is not None, page.text[:500]
        page = await browser.post("/connect/manual", data={"draft": draft.group(1)})
        draft = DRAFT.search(page.text)
        assert page.status_code == 200 and draft is not None, page.text[:500]
        servers = {
            "password": password,
            "imap_host": "127.0.0.1",
            "imap_port": str(dovecot.imaps_port),
            "imap_security": "ssl",
            "imap_username": email,
        }
        page = await browser.post("/connect/manual/save", data={"draft": draft.group(1), **servers})
        assert page.status_code == 200, page.text[:500]
        done = await finished(browser, page.text)  # the connection test runs against Dovecot
        tested = TESTED.search(done)
        assert 'data-ok="true"' in done and tested is not None, done[:1000]
        page = await browser.post("/connect/settings", data={"draft": tested.group(1)})
        draft = DRAFT.search(page.text)
        assert page.status_code == 200 and draft is not None, page.text[:500]
        saved = await browser.post("/connect/save", data={"draft": draft.group(1), "check_interval": "60"})
    assert saved.status_code == 303, saved.text[:500]
    back = parse_qs(urlsplit(saved.headers["location"]).query)
    assert back["status"] == ["connected"]
    return back["mailbox_id"][0]


async def test_the_wizard_creates_the_links_mailbox_for_the_links_user(
    app: FastAPI,
    tenant: TenantHandle,
    tenant_client: httpx.AsyncClient,
    secret_watch: SecretWatch,
    dovecot: Dovecot,
) -> None:
    minter = await set_verifier(tenant_client, tenant.id)
    async with api_client(app, minter.token("lena", tid=tenant.id), secret_watch) as lena:
        link = await lena.post("/v1/connect-links", json={"return_url": "https://crm.example/back"})
        assert link.status_code == 201 and link.json()["owner"] == "lena", link.text
        mailbox_id = await run_wizard(app, link.json()["url"], dovecot)
        mine = await lena.get(f"/v1/mailboxes/{mailbox_id}")
        assert mine.status_code == 200 and mine.json()["owner"] == "lena", mine.text
        assert [m["id"] for m in (await lena.get("/v1/mailboxes")).json()["items"]] == [mailbox_id]

    # the tenant key names any user; without one the mailbox is the tenant's, as before
    named = await tenant_client.post(
        "/v1/connect-links", json={"owner": "mona", "return_url": "https://crm.example/back"}
    )
    assert named.status_code == 201 and named.json()["owner"] == "mona", named.text
    monas = await run_wizard(app, named.json()["url"], dovecot)
    assert (await tenant_client.get(f"/v1/mailboxes/{monas}")).json()["owner"] == "mona"
    plain = await tenant_client.post("/v1/connect-links", json={"return_url": "https://crm.example/back"})
    assert plain.json()["owner"] is None
    tenants = await run_wizard(app, plain.json()["url"], dovecot)
    assert (await tenant_client.get(f"/v1/mailboxes/{tenants}")).json()["owner"] is None
