"""The dashboard against a live `mailport serve` whose watchers ingest from the Dovecot bed."""

from __future__ import annotations

import time
import uuid
from email.message import EmailMessage

from playwright.sync_api import Page, expect

from tests.e2e.web.browser.conftest import Shot, WebServer, sign_in


def message(to: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Guest <guest@example.org>"
    msg["To"] = to
    msg["Subject"] = "Booking request"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.org>"
    msg.set_content("Do you have a room for two nights?")
    return msg.as_bytes()


def create_mailbox(web: WebServer, key: str, email: str, password: str, **extra: object) -> str:
    body = {
        "email": email,
        "auth_method": "password",
        "password": password,
        "imap": {"host": "localhost", "port": web.dovecot.imaps_port, "security": "ssl"},
        "smtp": {"host": "localhost", "port": web.smtp.tls_port, "security": "ssl"},
        **extra,
    }
    with web.api(key) as api:
        response = api.post("/v1/mailboxes", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_the_dashboard_shows_a_message_arriving(
    page: Page, web: WebServer, web_tenant: tuple[str, str], password_user: tuple[str, str], shot: Shot
):
    email, password = password_user
    create_mailbox(web, web_tenant[1], email, password, purpose="booking")
    sign_in(page, web_tenant[1])
    card = page.get_by_test_id("mailbox").filter(has_text=email)
    expect(card).to_be_visible()
    # The watcher connects within seconds of the mailbox being created.
    deadline = time.monotonic() + 20
    while card.locator(".badge").inner_text() != "Connected":
        assert time.monotonic() < deadline, card.locator(".badge").inner_text()
        time.sleep(0.5)
        page.reload()
    expect(card.get_by_test_id("processed")).to_have_text("0")

    web.dovecot.deliver(email, message(email))
    # IDLE reports it within a second; allow for Dovecot falling back to its 30 s check when the
    # machine's inotify instances (shared by every Dovecot of every test run) are exhausted.
    started = time.monotonic()
    deadline = started + 60
    while card.get_by_test_id("processed").inner_text() != "1":
        assert time.monotonic() < deadline, "the message never showed up on the dashboard"
        time.sleep(0.5)
        page.reload()
    print(f"message on the dashboard after {time.monotonic() - started:.1f} s")
    expect(card.locator("svg.chart")).to_have_attribute(
        "aria-label", "Messages processed per hour for " + email + ": 1 messages in the last 24 hours"
    )
    expect(card.locator("rect.bar title").last).to_contain_text("1 processed")
    shot(page, "dashboard")
    page.set_viewport_size({"width": 390, "height": 844})
    expect(card.locator("svg.chart")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    shot(page, "dashboard-phone")


def test_dashboard_actions_test_disable_enable_delete(
    page: Page, web: WebServer, web_tenant: tuple[str, str], password_user: tuple[str, str], shot: Shot
):
    email, password = password_user
    mailbox_id = create_mailbox(web, web_tenant[1], email, password)
    sign_in(page, web_tenant[1])
    card = page.get_by_test_id("mailbox").filter(has_text=email)
    card.get_by_role("button", name="Test").click()
    check = card.get_by_test_id("check")
    expect(check).to_have_attribute("data-done", "true", timeout=20_000)
    expect(check).to_have_attribute("data-ok", "true")
    expect(card.locator(".step.ok").filter(has_text="Open the inbox")).to_be_visible()
    shot(page, "dashboard-test")

    card.get_by_role("button", name="Disable").click()
    expect(card.locator(".badge")).to_have_text("Disabled")
    card.get_by_role("button", name="Enable").click()
    expect(card.locator(".badge")).not_to_have_text("Disabled")

    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Delete").click()
    expect(page.get_by_test_id("mailbox").filter(has_text=email)).to_have_count(0)
    with web.api(web_tenant[1]) as api:
        assert api.get(f"/v1/mailboxes/{mailbox_id}").status_code == 404


def test_sign_in_errors_and_csrf(page: Page, web: WebServer, web_tenant: tuple[str, str]):
    page.goto("/")
    expect(page).to_have_url(f"{web.url}/signin")
    page.get_by_label("API key").fill("mp_wrong_key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#api_key-error")).to_contain_text("invalid")
    # A form posted without the session's CSRF token is refused with a page, not a 500.
    response = page.request.post(f"{web.url}/signin", form={"api_key": web_tenant[1], "csrf": "forged"})
    assert response.status == 403 and "csrf_failed" in response.text()


def test_reconnect_a_password_mailbox_with_a_new_password(
    page: Page, web: WebServer, web_tenant: tuple[str, str], password_user: tuple[str, str]
):
    email, password = password_user
    mailbox_id = create_mailbox(web, web_tenant[1], email, "an-old-wrong-password")
    sign_in(page, web_tenant[1])
    card = page.get_by_test_id("mailbox").filter(has_text=email)
    card.get_by_role("button", name="Reconnect").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Reconnect {email}")
    expect(page.locator("#imap_port")).to_have_value(str(web.dovecot.imaps_port))  # the stored settings
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Test the connection").click()
    check = page.get_by_test_id("check")
    expect(check).to_have_attribute("data-done", "true", timeout=20_000)
    expect(check).to_have_attribute("data-ok", "true")
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Save mailbox").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"{email} is connected")
    with web.api(web_tenant[1]) as api:
        mailboxes = api.get("/v1/mailboxes").json()["items"]
        assert [m["id"] for m in mailboxes] == [mailbox_id]  # the same mailbox, not a new one
        tested = api.post(f"/v1/mailboxes/{mailbox_id}/test").json()
    assert tested["ok"] is True  # the new password is the stored one
