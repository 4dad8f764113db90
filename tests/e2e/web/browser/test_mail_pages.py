"""The mail pages in a real browser against a live `mailport serve` and the Dovecot bed: from the
dashboard to a folder's messages (unread in bold) to a message whose HTML renders inside the
sandboxed frame; readable on a phone."""

from __future__ import annotations

import uuid
from email.message import EmailMessage

from playwright.sync_api import Page, expect

from tests.e2e.web.browser.conftest import Shot, WebServer, sign_in
from tests.e2e.web.browser.test_dashboard import create_mailbox


def letter(to: str, subject: str, *, sender: str, text: str, html: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.org>"
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg.as_bytes()


def test_from_the_dashboard_to_a_message_in_the_sandboxed_frame(
    page: Page, web: WebServer, web_tenant: tuple[str, str], password_user: tuple[str, str], shot: Shot
) -> None:
    email, password = password_user
    web.dovecot.expunge_all(email)
    mailbox_id = create_mailbox(web, web_tenant[1], email, password)
    request = "Haben Sie vom 3. bis 5. Mai ein Doppelzimmer frei?"
    web.dovecot.deliver(
        email, letter(email, "Zimmeranfrage", sender="Jörg Weber <joerg@example.org>", text=request)
    )
    invoice = '<h2 style="color:#155e75">Rechnung 2026-042</h2><p>Summe: <b>42 €</b></p>'
    invoice += '<script>document.title="pwned"</script>'
    sender = "Buchhaltung <rechnung@example.org>"
    web.dovecot.deliver(
        email, letter(email, "Ihre Rechnung 2026-042", sender=sender, text="Summe", html=invoice)
    )
    with web.api(web_tenant[1]) as api:
        listed = api.get(f"/v1/mailboxes/{mailbox_id}/messages")
        assert listed.status_code == 200, listed.text
        first = next(m for m in listed.json()["data"] if m["subject"] == "Zimmeranfrage")
        marked = api.post(f"/v1/mailboxes/{mailbox_id}/messages/{first['ref']}/flags", json={"add": ["seen"]})
        assert marked.status_code == 204, marked.text

    sign_in(page, web_tenant[1])
    page.get_by_test_id("mailbox").filter(has_text=email).get_by_test_id("open-messages").click()
    page.wait_for_url(f"**/mailboxes/{mailbox_id}/messages")
    inbox = page.locator('[data-testid="folder"][data-path="INBOX"]')
    expect(inbox.get_by_test_id("unseen")).to_have_text("1")
    expect(page.locator('[data-testid="folder"][data-path="Sent"] [data-role="sent"]')).to_have_count(1)
    rows = page.get_by_test_id("message")
    expect(rows).to_have_count(2)
    unread, read = rows.filter(has_text="Ihre Rechnung 2026-042"), rows.filter(has_text="Zimmeranfrage")
    weight = unread.locator("td.subject a").evaluate("a => getComputedStyle(a).fontWeight")
    assert int(weight) >= 700
    assert int(read.locator("td.subject a").evaluate("a => getComputedStyle(a).fontWeight")) < 700
    shot(page, "mail-list")

    unread.locator("td.subject a").click()
    expect(page.get_by_test_id("subject")).to_have_text("Ihre Rechnung 2026-042")
    expect(page.get_by_test_id("headers")).to_contain_text("Buchhaltung <rechnung@example.org>")
    frame = page.frame_locator("iframe.message-body")
    expect(frame.locator("h2")).to_have_text("Rechnung 2026-042")
    expect(frame.locator("b")).to_have_text("42 €")
    assert page.title() != "pwned"
    sandbox = page.locator("iframe.message-body").get_attribute("sandbox") or ""
    assert "allow-scripts" not in sandbox and "allow-same-origin" not in sandbox
    shot(page, "mail-message")

    page.get_by_role("button", name="Mark as read").click()
    expect(page.get_by_role("button", name="Mark as unread")).to_be_visible()

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/mailboxes/{mailbox_id}/messages")
    expect(page.get_by_test_id("message")).to_have_count(2)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    shot(page, "mail-list-phone")
