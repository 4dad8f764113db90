"""The contacts pages in a real browser against a live `mailport serve` and the Dovecot bed: the
server's contacts worker harvests a mailbox switched on through the API; the list ranks what it
found and shows a hostile display name as text; two ticked contacts are merged after the
confirmation page; a delete asks first; the harvest page shows the mailbox's run."""

from __future__ import annotations

import time

import httpx
from playwright.sync_api import Dialog, Page, expect

from tests.e2e.web.browser.conftest import Shot, WebServer, sign_in
from tests.e2e.web.browser.test_dashboard import create_mailbox
from tests.e2e.web.browser.test_mail_pages import letter

XSS_NAME = "<img src=x onerror=document.title='pwned'>"


def harvested(api: httpx.Client, count: int) -> list[dict[str, object]]:
    """The tenant's contacts once the worker has harvested ``count`` of them (30 s at most)."""
    deadline = time.monotonic() + 30
    while True:
        found = api.get("/v1/contacts").json()["items"]
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) == count, found
            return list(found)
        time.sleep(0.3)


def test_harvested_contacts_ranked_merged_and_deleted(
    page: Page, web: WebServer, web_tenant: tuple[str, str], password_user: tuple[str, str], shot: Shot
) -> None:
    email, password = password_user
    web.dovecot.expunge_all(email)
    for sender, subject in (
        ("Jörg Weber <joerg@example.org>", "Zimmeranfrage"),
        ("Jörg Weber <joerg@example.org>", "Anreise"),
        ("J. Weber <j.weber@weber-family.example>", "Privat"),
        (f'"{XSS_NAME}" <mallory@evil.example>', "Hallo"),
    ):
        web.dovecot.deliver(email, letter(email, subject, sender=sender, text="Guten Tag"))
    mailbox_id = create_mailbox(web, web_tenant[1], email, password)
    with web.api(web_tenant[1]) as api:
        switched = api.patch(f"/v1/mailboxes/{mailbox_id}", json={"settings": {"contacts": {}}})
        assert switched.status_code == 200, switched.text
        found = harvested(api, 3)
    ids = {str(c["email"]): str(c["id"]) for c in found}

    sign_in(page, web_tenant[1])
    page.get_by_role("link", name="Contacts").click()
    page.wait_for_url("**/contacts")
    rows = page.get_by_test_id("contact")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("joerg@example.org")  # two messages: the highest score
    expect(page.get_by_text(XSS_NAME)).to_have_count(1)  # the name as text, never as markup
    assert page.title() != "pwned"
    shot(page, "contacts-list")

    page.get_by_label("Select Jörg Weber").check()
    page.get_by_label("Select J. Weber").check()
    page.get_by_test_id("merge-selected").click()
    page.wait_for_url("**/contacts/merge/review")
    expect(page.locator(f'input[name="into"][value="{ids["joerg@example.org"]}"]')).to_be_checked()
    page.get_by_test_id("confirm-merge").click()
    page.wait_for_url(f"**/contacts/{ids['joerg@example.org']}")
    expect(page.get_by_test_id("addresses")).to_contain_text("j.weber@weber-family.example")
    expect(page.get_by_test_id("received-from")).to_have_text("3")
    shot(page, "contacts-contact")

    page.goto(f"/contacts/{ids['mallory@evil.example']}")
    questions: list[str] = []

    def answer(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.once("dialog", answer)
    page.get_by_test_id("delete").click()
    page.wait_for_url("**/contacts")
    assert questions and "Harvesting will not bring it back" in questions[0]
    expect(rows).to_have_count(1)

    page.get_by_test_id("open-harvest").click()
    page.wait_for_url("**/contacts/harvest")
    row = page.locator(f'[data-testid="harvest"][data-mailbox-id="{mailbox_id}"]')
    expect(row).to_have_attribute("data-state", "idle")
    row.get_by_test_id("sync-now").click()
    page.wait_for_url("**/contacts/harvest")
    expect(page.locator(f'[data-testid="harvest"][data-mailbox-id="{mailbox_id}"]')).to_have_count(1)
