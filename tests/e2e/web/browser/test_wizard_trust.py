"""The wizard in a real browser against a server whose certificate the service does not trust
(the bed's Dovecot behind a TLS proxy with a self-signed certificate of its own; the served
process trusts only the bed's CA, through ``MAILPORT_MAIL_CA_FILE``): the failed test offers
"Trust this certificate" with its fingerprint, subject, issuer and expiry; trusting it turns the
test green and the saved mailbox keeps the pin."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from mailport.net.trust import Certificate
from tests.e2e.web.browser.conftest import Shot, WebServer, start_connect
from tests.e2e.web.browser.test_wizard import fill_manual
from tests.fixtures.tls import TLSProxy, make_cert


def test_trust_a_self_signed_server_from_the_test_step(
    page: Page,
    web: WebServer,
    web_tenant: tuple[str, str],
    password_user: tuple[str, str],
    shot: Shot,
    tmp_path: Path,
) -> None:
    email, password = password_user
    pem, _, _ = make_cert(tmp_path, "home-server", names=["mail.home.test"])  # self-signed
    expected = Certificate.from_pem(pem.cert.read_text())
    with TLSProxy(web.dovecot.imap_port, pem) as proxy:
        start_connect(page, web_tenant[1], email)
        fill_manual(page, web, password, imap_port=proxy.port)
        page.get_by_role("button", name="Test the connection").click()

        check = page.get_by_test_id("check")
        expect(check).to_have_attribute("data-done", "true", timeout=20_000)
        expect(check).to_have_attribute("data-ok", "false")
        offer = page.get_by_test_id("trust-certificate")
        expect(offer).to_have_count(1)  # only IMAP presents it; SMTP's CA is trusted
        expect(offer).to_contain_text("The server's certificate is not trusted")
        expect(offer.get_by_test_id("fingerprint")).to_have_text(expected.sha256)
        expect(offer).to_contain_text("mail.home.test")
        expect(offer.get_by_test_id("expiry")).to_have_text(f"{expected.not_after:%Y-%m-%d}")
        expect(offer).to_contain_text("from IMAP for this mailbox")
        shot(page, "wizard-4-trust-certificate")

        offer.get_by_role("button", name="Trust this certificate").click()
        check = page.get_by_test_id("check")
        expect(check).to_have_attribute("data-done", "true", timeout=20_000)
        expect(check).to_have_attribute("data-ok", "true")
        expect(page.locator(".step.ok").filter(has_text="pinned certificate")).to_have_count(1)

        page.get_by_role("button", name="Continue").click()
        page.get_by_role("button", name="Save mailbox").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(f"{email} is connected")
        mailbox_id = page.get_by_test_id("mailbox-id").inner_text()
    with web.api(web_tenant[1]) as api:
        stored = api.get(f"/v1/mailboxes/{mailbox_id}").json()
    assert stored["imap"]["trusted_certificate"]["sha256"] == expected.sha256
    assert stored["smtp"]["trusted_certificate"] is None
