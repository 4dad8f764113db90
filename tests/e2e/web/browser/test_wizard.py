"""The connect wizard in a real browser against a live `mailport serve` and the mail test bed.

The bed's password users live at ``@dyn.example.test``, a special-use domain that detection
refuses to look up, so these accounts go through "Configure manually" (as the issue allows);
detection as you type is shown with a provider-database address.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.web.browser.conftest import Shot, WebServer, sign_in, start_connect


def finish_check(page: Page, *, ok: bool) -> None:
    check = page.get_by_test_id("check")
    expect(check).to_have_attribute("data-done", "true", timeout=20_000)
    expect(check).to_have_attribute("data-ok", "true" if ok else "false")


def fill_manual(page: Page, web: WebServer, password: str, *, imap_port: int | None = None) -> None:
    """The manual settings for the bed over TLS (IMAP at ``imap_port`` when given)."""
    page.get_by_role("button", name="Configure manually").click()
    page.locator("#imap_host").fill("localhost")
    page.locator("#imap_port").fill(str(imap_port or web.dovecot.imaps_port))
    page.locator("#imap_security").select_option("ssl")
    page.get_by_label("Also send mail through SMTP").check()
    page.locator("#smtp_host").fill("localhost")
    page.locator("#smtp_port").fill(str(web.smtp.tls_port))
    page.locator("#smtp_security").select_option("ssl")
    page.get_by_label("Password").fill(password)


def test_detection_as_you_type_and_the_sign_in_choices(page: Page, web_tenant: tuple[str, str], shot: Shot):
    sign_in(page, web_tenant[1])
    page.goto("/connect")
    page.get_by_label("Email address").press_sequentially("support@gmail.com", delay=20)
    detection = page.get_by_test_id("detection")
    expect(detection).to_contain_text("Gmail")
    expect(detection).to_contain_text("provider database")
    expect(detection).to_contain_text("high confidence")
    shot(page, "wizard-1-email")

    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("button", name="Connect with Google")).to_be_visible()
    expect(page.get_by_role("button", name="Configure manually")).to_be_visible()
    expect(page.get_by_label("App password")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("How to do this"))).to_have_attribute(
        "href", re.compile("support.google.com")
    )
    shot(page, "wizard-2-method")


def test_password_account_through_the_whole_wizard(
    page: Page, web: WebServer, web_tenant: tuple[str, str], password_user: tuple[str, str], shot: Shot
):
    email, password = password_user
    start_connect(page, web_tenant[1], email)
    expect(page.get_by_role("heading", level=1)).to_contain_text(email)
    fill_manual(page, web, password)
    # Inline validation: a port out of range is flagged as soon as the field is left.
    page.locator("#imap_port").fill("99999")
    page.locator("#imap_port").dispatch_event("change")
    expect(page.locator("#imap_port-error")).to_contain_text("1 to 65535")
    page.locator("#imap_port").fill(str(web.dovecot.imaps_port))
    page.locator("#imap_port").dispatch_event("change")
    expect(page.locator("#imap_port-error")).to_be_hidden()
    shot(page, "wizard-3-manual")
    page.get_by_role("button", name="Test the connection").click()

    finish_check(page, ok=True)
    assert page.locator(".step").count() >= 5
    expect(page.locator(".step.fail")).to_have_count(0)
    expect(page.locator(".step.ok").first).to_contain_text("ms")
    shot(page, "wizard-4-test")

    page.get_by_role("button", name="Continue").click()
    page.get_by_label("From name").fill("Acme Support")
    page.get_by_label("Purpose").fill("support")
    page.get_by_label("Check for new mail").select_option("300")
    page.get_by_label("Also deliver the mail sent from this mailbox").check()
    page.get_by_label("Delete it").check()
    expect(page.locator("#delete-warning")).to_contain_text("Deleting is permanent")
    shot(page, "wizard-5-settings")
    # Delete without ticking the confirmation is refused inline.
    page.get_by_role("button", name="Save mailbox").click()
    expect(page.locator("#after_processing-error")).to_contain_text("confirm")
    page.get_by_label("Mark it as read").check()
    page.get_by_role("button", name="Save mailbox").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text(f"{email} is connected")
    mailbox_id = page.get_by_test_id("mailbox-id").inner_text()
    shot(page, "wizard-6-done")
    with web.api(web_tenant[1]) as api:
        stored = api.get(f"/v1/mailboxes/{mailbox_id}").json()
    assert stored["email"] == email and stored["purpose"] == "support"
    assert stored["settings"] == {
        "from_name": "Acme Support",
        "check_interval": 300,
        "folder": "INBOX",
        "after_processing": "mark_read",
        "folders": ["INBOX", "role:sent"],
        "sending": {"sent_copy": "auto", "aliases": [], "rate_per_minute": None, "rate_per_day": None},
        "contacts": None,
    }
    assert stored["has_password"] is True and stored["imap"]["port"] == web.dovecot.imaps_port
    assert stored["status"] == "connected"  # it passed the test a moment before saving
    assert password not in page.content()

    page.goto("/")
    card = page.get_by_test_id("mailbox").filter(has_text=email)
    expect(card).to_be_visible()
    expect(card.locator("svg.chart")).to_have_attribute("aria-label", re.compile("in the last 24 hours"))


def test_a_wrong_password_shows_the_troubleshooting_hint_and_retry(
    page: Page, web: WebServer, web_tenant: tuple[str, str], password_user: tuple[str, str], shot: Shot
):
    email, _ = password_user
    start_connect(page, web_tenant[1], email)
    fill_manual(page, web, "not-the-password")
    page.get_by_role("button", name="Test the connection").click()
    finish_check(page, ok=False)
    failed = page.locator(".step.fail")
    expect(failed.first).to_contain_text("✗")
    expect(failed.first).to_contain_text("invalid_credentials")
    expect(page.get_by_test_id("hint").first).to_contain_text("How to fix it")
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    shot(page, "wizard-4-wrong-password")

    page.get_by_role("button", name="Edit the settings").click()
    expect(page.locator("#imap_host")).to_have_value("localhost")


def test_the_wizard_works_from_the_keyboard_with_a_visible_focus(page: Page, web_tenant: tuple[str, str]):
    sign_in(page, web_tenant[1])
    page.goto("/connect")
    assert page.evaluate("document.activeElement.id") == "email"  # focus starts in the field
    page.keyboard.type("someone@outlook.com")
    expect(page.get_by_test_id("detection")).to_contain_text("Outlook")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"  # the focus ring is visible
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Connect with Microsoft")).to_be_visible()
    focused = []
    for _ in range(12):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.textContent.trim()"))
    assert "Connect with Microsoft" in focused and "Configure manually" in focused
