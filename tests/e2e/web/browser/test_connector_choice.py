"""The wizard's "API (recommended)" or IMAP choice for Google and Microsoft accounts, in a real
browser: the choice is offered before the sign-in with the API pre-selected, it travels through
mailport's start page to the provider (the scopes asked for are the connector's), an IMAP choice
connects an IMAP mailbox, and a connect link can preset it."""

from __future__ import annotations

import re
import uuid
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, Route, expect

from tests.e2e.web.browser.conftest import Shot, WebServer, start_connect
from tests.e2e.web.browser.test_wizard import finish_check
from tests.fakes.graph import GraphFake

GMAIL_MODIFY = "https://www.googleapis.com/auth/gmail.modify"


def stop_at_provider(page: Page, web: WebServer) -> list[str]:
    """Follow the wizard's sign-in button to the provider's URL and answer it ourselves (the
    browser does not go on to sign in): the provider URLs the browser was sent to. Playwright
    routes only the first request of a redirect chain, so the chain is followed here: the
    wizard's POST → mailport's start page (which binds this browser) → the provider."""
    seen: list[str] = []

    def provider(route: Route) -> None:
        wizard = route.fetch(max_redirects=0)
        assert wizard.status == 303, wizard.text()
        start = page.request.get(wizard.headers["location"], max_redirects=0)
        assert start.status == 303 and "/v1/oauth/" in wizard.headers["location"]
        assert start.headers["location"].startswith(web.idp.url)
        seen.append(start.headers["location"])
        route.fulfill(status=200, content_type="text/html", body="<h1>The provider's sign-in</h1>")

    page.route(re.compile(re.escape(web.url) + "/connect/oauth$"), provider)
    return seen


def scopes_of(url: str) -> list[str]:
    return parse_qs(urlsplit(url).query)["scope"][0].split()


def test_api_is_offered_first_and_carried_to_the_provider(
    page: Page, web: WebServer, web_tenant: tuple[str, str], shot: Shot
):
    start_connect(page, web_tenant[1], f"api{uuid.uuid4().hex[:8]}@gmail.com")
    choice = page.get_by_test_id("connector-choice")
    api = choice.get_by_role("radio", name=re.compile("API \\(recommended\\)"))
    expect(api).to_be_checked()
    expect(choice).to_contain_text("the Gmail API")
    expect(choice).to_contain_text("IMAP or SMTP AUTH")  # why: it works where those are off
    expect(choice).to_contain_text("push")
    expect(choice.get_by_role("radio", name=re.compile("IMAP"))).not_to_be_checked()
    shot(page, "wizard-2-connector-choice")
    seen = stop_at_provider(page, web)
    page.get_by_role("button", name="Connect with Google").click()
    expect(page.get_by_role("heading", name="The provider's sign-in")).to_be_visible()
    assert GMAIL_MODIFY in scopes_of(seen[-1]) and "https://mail.google.com/" not in scopes_of(seen[-1])


def test_microsoft_accounts_get_graph(page: Page, web: WebServer, web_tenant: tuple[str, str]):
    start_connect(page, web_tenant[1], f"ms{uuid.uuid4().hex[:8]}@outlook.com")
    choice = page.get_by_test_id("connector-choice")
    expect(choice).to_contain_text("Microsoft Graph")
    seen = stop_at_provider(page, web)
    page.get_by_role("button", name="Connect with Microsoft").click()
    expect(page.get_by_role("heading", name="The provider's sign-in")).to_be_visible()
    asked = scopes_of(seen[-1])
    assert (
        "https://graph.microsoft.com/Mail.ReadWrite" in asked
        and "https://graph.microsoft.com/Mail.Send" in asked
    )
    assert not any("outlook.office.com" in scope for scope in asked)


def test_choosing_imap_connects_an_imap_mailbox(page: Page, web: WebServer, web_tenant: tuple[str, str]):
    email = f"imap{uuid.uuid4().hex[:8]}@gmail.com"
    start_connect(page, web_tenant[1], email)
    page.get_by_role("radio", name=re.compile("IMAP")).check()
    page.get_by_role("button", name="Connect with Google").click()
    page.wait_for_url(re.compile(r"/connect/oauth/return\?"))
    finish_check(page, ok=True)
    expect(page.locator("[data-step=imap-select]")).to_be_visible()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Save mailbox").click()
    expect(page.get_by_test_id("connector")).to_have_text("IMAP")
    mailbox_id = page.get_by_test_id("mailbox-id").inner_text()
    with web.api(web_tenant[1]) as api:
        stored = api.get(f"/v1/mailboxes/{mailbox_id}").json()
    assert stored["connector"] == "imap" and "https://mail.google.com/" in stored["oauth"]["scopes"]
    page.goto("/")
    card = page.get_by_test_id("mailbox").filter(has_text=email)
    expect(card.get_by_test_id("connector")).to_have_text("IMAP")


def test_a_connect_link_presets_the_connector(page: Page, web: WebServer, web_tenant: tuple[str, str]):
    with web.api(web_tenant[1]) as api:
        made = api.post("/v1/connect-links", json={"email": "pre@gmail.com", "connector": "api"})
        assert made.status_code == 201, made.text
        assert made.json()["connector"] == "api"
        wrong = api.post("/v1/connect-links", json={"connector": "pop9"})
        assert wrong.status_code == 422
    page.goto(made.json()["url"])
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("button", name="Connect with Google")).to_be_visible()
    expect(page.get_by_test_id("connector-choice")).to_have_count(0)  # decided by the link
    seen = stop_at_provider(page, web)
    page.get_by_role("button", name="Connect with Google").click()
    expect(page.get_by_role("heading", name="The provider's sign-in")).to_be_visible()
    assert GMAIL_MODIFY in scopes_of(seen[-1])


def test_the_gmail_api_choice_end_to_end(page: Page, web: WebServer, web_tenant: tuple[str, str], shot: Shot):
    """Sign in for the Gmail API (the fake's), test through the connector, save, see it named."""
    email = f"gapi{uuid.uuid4().hex[:8]}@gmail.com"
    start_connect(page, web_tenant[1], email)
    expect(page.get_by_role("radio", name=re.compile("API \\(recommended\\)"))).to_be_checked()
    page.get_by_role("button", name="Connect with Google").click()
    page.wait_for_url(re.compile(r"/connect/oauth/return\?"))
    finish_check(page, ok=True)
    check = page.get_by_test_id("check")
    expect(check).to_contain_text("Mail API (Gmail API)")
    expect(page.locator("[data-step=api-token]")).to_contain_text("Get an access token")
    expect(page.locator("[data-step=api-profile]")).to_contain_text("signed in to the Gmail API")
    expect(page.locator("[data-step^=imap-]")).to_have_count(0)  # no IMAP steps for an API mailbox
    shot(page, "wizard-4-gmail-api-test")
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Save mailbox").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"{email} is connected")
    expect(page.get_by_test_id("connector")).to_have_text("Gmail API")
    mailbox_id = page.get_by_test_id("mailbox-id").inner_text()
    with web.api(web_tenant[1]) as api:
        stored = api.get(f"/v1/mailboxes/{mailbox_id}").json()
    assert stored["connector"] == "gmail_api" and stored["imap"] is None and stored["smtp"] is None
    assert stored["oauth"]["scopes"] and GMAIL_MODIFY in stored["oauth"]["scopes"]
    page.goto("/")
    card = page.get_by_test_id("mailbox").filter(has_text=email)
    expect(card.get_by_test_id("connector")).to_have_text("Gmail API")


def test_the_graph_choice_end_to_end(
    page: Page, web: WebServer, web_tenant: tuple[str, str], graph_fake: GraphFake
):
    """A Microsoft account through Graph (the fake's): no IMAP, no SMTP AUTH involved. Before
    its mailbox exists at Microsoft, the test says so (``api_not_enabled``)."""
    email = f"mapi{uuid.uuid4().hex[:8]}@outlook.com"
    start_connect(page, web_tenant[1], email)
    page.get_by_role("button", name="Connect with Microsoft").click()
    page.wait_for_url(re.compile(r"/connect/oauth/return\?"))
    finish_check(page, ok=False)
    expect(page.locator("[data-step=api-profile]")).to_contain_text("api_not_enabled")
    expect(page.locator("[data-step=api-profile]")).to_contain_text("inactive, soft-deleted")
    expect(page.get_by_role("button", name="Edit the settings")).to_have_count(0)  # no servers to edit
    graph_fake.account(email)  # the mailbox is provisioned: Retry now passes
    page.get_by_role("button", name="Retry").click()
    finish_check(page, ok=True)
    expect(page.get_by_test_id("check")).to_contain_text("Mail API (Microsoft Graph)")
    expect(page.locator("[data-step=api-profile]")).to_contain_text("signed in to Microsoft Graph")
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Save mailbox").click()
    expect(page.get_by_test_id("connector")).to_have_text("Microsoft Graph")
    mailbox_id = page.get_by_test_id("mailbox-id").inner_text()
    with web.api(web_tenant[1]) as api:
        stored = api.get(f"/v1/mailboxes/{mailbox_id}").json()
    assert stored["connector"] == "graph" and stored["imap"] is None and stored["smtp"] is None
