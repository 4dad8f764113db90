"""OAuth through the local authorization server, and connect links, in a real browser."""

from __future__ import annotations

import re
import uuid
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Browser, Page, Route, expect

from tests.e2e.web.browser.conftest import Shot, WebServer, start_connect
from tests.e2e.web.browser.test_wizard import fill_manual, finish_check

APP = "https://app.example.test"


def test_connect_with_google_then_reconnect_after_reauth_required(
    page: Page, web: WebServer, web_tenant: tuple[str, str], shot: Shot
):
    email = f"o{uuid.uuid4().hex[:10]}@gmail.com"
    start_connect(page, web_tenant[1], email)
    page.get_by_role("radio", name=re.compile("IMAP")).check()  # the bed serves IMAP, not the Gmail API
    page.get_by_role("button", name="Connect with Google").click()
    # The authorization server signs the user in and sends the browser back through the callback.
    page.wait_for_url(re.compile(r"/connect/oauth/return\?"))
    finish_check(page, ok=True)
    expect(page.locator(".step.ok").filter(has_text="Sign in").first).to_contain_text(email)
    shot(page, "wizard-4-oauth-test")
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Purpose").fill("booking")
    page.get_by_role("button", name="Save mailbox").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"{email} is connected")
    mailbox_id = page.get_by_test_id("mailbox-id").inner_text()

    with web.api(web_tenant[1]) as api:
        stored = api.get(f"/v1/mailboxes/{mailbox_id}").json()
        assert stored["auth_method"] == "oauth2" and stored["oauth"]["provider"] == "google"
        assert stored["purpose"] == "booking" and stored["status"] == "connected"
        # The grant is revoked: the dashboard asks for a new sign-in.
        assert api.delete(f"/v1/mailboxes/{mailbox_id}/oauth").status_code == 200

    page.goto("/")
    card = page.get_by_test_id("mailbox").filter(has_text=email)
    expect(card.locator(".badge")).to_have_text("Sign-in needed")
    shot(page, "dashboard-reauth")
    card.get_by_role("button", name="Reconnect with Google").click()
    page.wait_for_url(re.compile(r"/connect/oauth/return\?"))
    finish_check(page, ok=True)
    with web.api(web_tenant[1]) as api:
        again = api.get(f"/v1/mailboxes/{mailbox_id}").json()
    assert again["status"] == "connected" and again["oauth"]["connected_email"] == email
    with web.api(web_tenant[1]) as api:
        assert len(api.get("/v1/mailboxes").json()["items"]) == 1  # the same mailbox, reconnected


def test_a_connect_link_works_once_then_refuses(
    browser: Browser, web: WebServer, web_tenant: tuple[str, str], password_user: tuple[str, str], shot: Shot
):
    email, password = password_user
    with web.api(web_tenant[1]) as api:
        response = api.post(
            "/v1/connect-links",
            json={"purpose": "stopsale", "email": email, "return_url": f"{APP}/mailboxes/done?x=1"},
        )
    assert response.status_code == 201, response.text
    link = response.json()
    assert link["url"].startswith(f"{web.url}/link/") and link["purpose"] == "stopsale"

    context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=web.url)  # a phone
    context.set_default_timeout(15_000)
    landed: list[str] = []

    def app(route: Route) -> None:
        landed.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>Back in the app</h1>")

    context.route(f"{APP}/**", app)
    try:
        page = context.new_page()
        page.goto(link["url"])
        expect(page.get_by_label("Email address")).to_have_value(email)
        expect(page.locator(".who")).to_contain_text("Connecting a mailbox for")
        expect(page.get_by_role("link", name="Mailboxes")).to_have_count(0)  # no operator pages
        shot(page, "link-1-phone", full_page=False)
        page.get_by_role("button", name="Continue").click()
        fill_manual(page, web, password)
        page.get_by_role("button", name="Test the connection").click()
        finish_check(page, ok=True)
        shot(page, "link-2-phone-test")
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_label("Purpose")).to_have_value("stopsale")
        page.get_by_role("button", name="Save mailbox").click()
        expect(page.get_by_role("heading", name="Back in the app")).to_be_visible()
        query = parse_qs(urlsplit(landed[-1]).query)
        assert query["x"] == ["1"] and query["status"] == ["connected"]
        mailbox_id = query["mailbox_id"][0]
        with web.api(web_tenant[1]) as api:
            stored = api.get(f"/v1/mailboxes/{mailbox_id}").json()
        assert stored["email"] == email and stored["purpose"] == "stopsale"

        # The session ends with the saved mailbox, and the link refuses a second use.
        page.goto(f"{web.url}/connect")
        expect(page.get_by_role("heading", level=1)).to_contain_text("That didn't work")
        expect(page.locator("main")).to_contain_text("finished")
        second = page.goto(link["url"])
        assert second is not None and second.status == 410
        expect(page.get_by_role("heading", level=1)).to_have_text("This link can't be used again")
        expect(page.locator("main")).to_contain_text("connect_link_used")
        shot(page, "link-3-used", full_page=False)
    finally:
        context.close()

    fresh = browser.new_context(base_url=web.url)
    try:
        other = fresh.new_page()
        assert (response := other.goto(link["url"])) is not None and response.status == 410
        tampered = other.goto(link["url"][:-6] + "AAAAAA")
        assert tampered is not None and tampered.status == 400
        expect(other.locator("main")).to_contain_text("connect_link_invalid")
    finally:
        fresh.close()


def test_device_code_sign_in_shows_code_link_countdown_and_live_status(
    page: Page, web: WebServer, web_tenant: tuple[str, str], shot: Shot
):
    import httpx

    email = f"d{uuid.uuid4().hex[:10]}@outlook.com"
    start_connect(page, web_tenant[1], email)
    expect(page.get_by_role("button", name="Connect with Microsoft")).to_be_visible()
    page.get_by_role("radio", name=re.compile("IMAP")).check()  # the bed serves IMAP, not Graph
    page.get_by_role("button", name="Sign in on another device with a code instead").click()

    code = page.get_by_test_id("user-code")
    expect(code).to_have_text(re.compile(r"^\d{4}-\d{4}$"))
    expect(page.locator("a.button")).to_have_attribute("href", re.compile(r"/device\?user_code="))
    countdown = page.locator("[data-countdown]")
    first = countdown.inner_text()
    expect(countdown).not_to_have_text(first, timeout=3_000)  # it ticks
    expect(page.locator("#device-status")).to_contain_text("Waiting for you to sign in")
    shot(page, "wizard-3-device-code")

    approved = httpx.post(
        f"{web.idp.url}/_test/device/approve", json={"user_code": code.inner_text(), "email": email}
    )
    assert approved.status_code == 200
    # The status is polled live; once the provider says yes the wizard moves on to the test.
    page.wait_for_url(re.compile(r"/connect/oauth/return\?"), timeout=20_000)
    finish_check(page, ok=True)
    with web.api(web_tenant[1]) as api:
        (mailbox,) = api.get("/v1/mailboxes").json()["items"]
    assert mailbox["email"] == email and mailbox["oauth"]["provider"] == "microsoft"
