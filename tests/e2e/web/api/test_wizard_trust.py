"""The wizard's test step for a server whose certificate this service does not trust (the bed's
Dovecot and SMTP: self-signed): the failed test shows "Trust this certificate" with the SHA-256
fingerprint, subject, issuer and expiry; trusting it tests again (green), and the saved mailbox
keeps the pin (the API shows its fingerprint). With ``MAILPORT_MAIL_CA_FILE`` the test passes
without any of that (the wizard used to ignore the setting)."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from mailport.config import Settings
from mailport.detect import DetectOptions, Detector
from mailport.net.trust import Certificate
from tests.e2e.web.polling import finished
from tests.fixtures.api import BASE_URL, TenantHandle, make_settings
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
DRAFT = re.compile(r'name="draft" value="([^"]+)"')


@pytest.fixture
def settings(
    fresh_database_url: str, tmp_path: Path, secret_key: str, request: pytest.FixtureRequest, dovecot: Dovecot
) -> Settings:
    built = make_settings(fresh_database_url, tmp_path / "var", secret_key)
    built.allow_private_hosts = True  # the bed is on 127.0.0.1
    if getattr(request, "param", False):
        built.mail_ca_file = Path(dovecot.ca_file)
    return built


@pytest.fixture
async def browser(app: FastAPI, tenant: TenantHandle) -> AsyncIterator[httpx.AsyncClient]:
    """Signed in with the tenant's key, sending its CSRF token; detection answers at once."""
    app.state.detector = Detector(options=DetectOptions(probe=False, timeout=1))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client:
        token = CSRF.search((await client.get("/signin")).text)
        assert token is not None
        signed = await client.post("/signin", data={"csrf": token.group(1), "api_key": tenant.api_key})
        assert signed.status_code == 303, signed.text
        token = CSRF.search((await client.get("/connect")).text)
        assert token is not None
        client.headers["X-CSRF-Token"] = token.group(1)
        yield client


async def _settings_entered(
    browser: httpx.AsyncClient, dovecot: Dovecot, smtp: SubmissionServer, user: str, password: str
) -> httpx.Response:
    """Steps 1-3: the address, then the manual settings (IMAP 993-style TLS, SMTP STARTTLS)."""
    method = await browser.post("/connect/method", data={"email": user})
    assert method.status_code == 200, method.text
    draft = DRAFT.search(method.text)
    assert draft is not None
    return await browser.post(
        "/connect/manual/save",
        data={
            "draft": html.unescape(draft.group(1)),
            "imap_host": "127.0.0.1",
            "imap_port": str(dovecot.imaps_port),
            "imap_security": "ssl",
            "imap_username": user,
            "use_smtp": "on",
            "smtp_host": "127.0.0.1",
            "smtp_port": str(smtp.port),
            "smtp_security": "starttls",
            "smtp_username": user,
            "password": password,
        },
    )


async def _finished(browser: httpx.AsyncClient, page: httpx.Response) -> str:
    """Poll the test run as the page does until it is done; its final HTML."""
    return await finished(browser, page.text, tries=100, pause=0.1)


def _form(fragment: str, action: str) -> dict[str, str]:
    start = fragment.index(f'action="{action}"')
    form = fragment[start : fragment.index("</form>", start)]
    return {name: html.unescape(value) for name, value in re.findall(r'name="([^"]+)" value="([^"]*)"', form)}


async def test_trust_this_certificate_then_save(
    browser: httpx.AsyncClient,
    tenant_client: httpx.AsyncClient,
    dovecot: Dovecot,
    smtp: SubmissionServer,
    password_user: tuple[str, str],
) -> None:
    user, password = password_user
    expected = Certificate.from_pem(Path(dovecot.ca_file).read_text())
    page = await _settings_entered(browser, dovecot, smtp, user, password)
    failed = await _finished(browser, page)
    assert 'data-ok="false"' in failed and "certificate_self_signed" in failed
    # One certificate (IMAP and SMTP present the same): one offer, with what a person compares.
    assert failed.count('data-testid="trust-certificate"') == 1
    assert f'data-testid="fingerprint">{expected.sha256}<' in failed
    assert "Subject</dt><dd>localhost<" in failed and "Issuer</dt><dd>localhost<" in failed
    assert f'data-testid="expiry">{expected.not_after:%Y-%m-%d}<' in failed
    assert "IMAP and SMTP" in failed

    trusted = await browser.post("/connect/trust", data=_form(failed, "/connect/trust"))
    assert trusted.status_code == 200, trusted.text
    passed = await _finished(browser, trusted)
    assert 'data-ok="true"' in passed, passed
    assert "pinned certificate" in passed

    settings_page = await browser.post("/connect/settings", data=_form(passed, "/connect/settings"))
    draft = DRAFT.search(settings_page.text)
    assert draft is not None
    saved = await browser.post(
        "/connect/save",
        data={"draft": html.unescape(draft.group(1)), "check_interval": "60", "after_processing": "none"},
    )
    assert saved.status_code == 200, saved.text
    mailbox = (await tenant_client.get("/v1/mailboxes")).json()["items"][0]
    assert mailbox["imap"]["trusted_certificate"]["sha256"] == expected.sha256
    assert mailbox["smtp"]["trusted_certificate"]["sha256"] == expected.sha256
    assert mailbox["status"] == "connected"
    # The mailbox's own Test button agrees with the wizard.
    assert (await tenant_client.post(f"/v1/mailboxes/{mailbox['id']}/test")).json()["ok"] is True


async def test_trust_takes_the_certificate_from_the_run_not_the_form(
    browser: httpx.AsyncClient, dovecot: Dovecot, smtp: SubmissionServer, password_user: tuple[str, str]
) -> None:
    user, password = password_user
    failed = await _finished(browser, await _settings_entered(browser, dovecot, smtp, user, password))
    form = _form(failed, "/connect/trust")
    forged = await browser.post("/connect/trust", data={**form, "sha256": "AB:CD"})
    assert forged.status_code == 422 and "was not presented" in forged.text
    gone = await browser.post("/connect/trust", data={**form, "run": "no-such-run"})
    assert gone.status_code == 422 and "no longer available" in gone.text


@pytest.mark.parametrize("settings", [True], indirect=True)
async def test_the_wizard_honours_the_mail_ca_file(
    browser: httpx.AsyncClient, dovecot: Dovecot, smtp: SubmissionServer, password_user: tuple[str, str]
) -> None:
    user, password = password_user
    passed = await _finished(browser, await _settings_entered(browser, dovecot, smtp, user, password))
    assert 'data-ok="true"' in passed, passed
    assert "trust-certificate" not in passed
