"""The wizard for a POP3 mailbox: detection that offers POP3 (no IMAP found) fills the form and
the draft, the manual form creates a pop3-connector mailbox through the POP3 checks against
Dovecot's POP3 server, and the final step offers only what POP3 can do after processing."""

from __future__ import annotations

import html
import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from mailport.config import Settings
from mailport.detect import DetectOptions, Detector, make_resolver
from tests.e2e.web.api.test_wizard_trust import DRAFT, _finished, _form
from tests.e2e.web.api.test_wizard_trust import browser as browser  # the signed-in visitor
from tests.fixtures.api import make_settings
from tests.fixtures.dns import LocalDNSServer
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer


@pytest.fixture
def settings(fresh_database_url: str, tmp_path: Path, secret_key: str, dovecot: Dovecot) -> Settings:
    built = make_settings(fresh_database_url, tmp_path / "var", secret_key)
    built.allow_private_hosts = True  # the bed is on 127.0.0.1
    built.mail_ca_file = Path(dovecot.ca_file)
    return built


@pytest.fixture
def local_detection(app: FastAPI, browser: httpx.AsyncClient, dns_server: LocalDNSServer) -> None:
    """Detection asks the local DNS server only (after ``browser`` installed its own). The
    timeouts are bounds, not waits (the server answers every name, NXDOMAIN included): 1 s per
    query ran out on a loaded CI run and detection then found nothing."""
    app.state.detector = Detector(
        options=DetectOptions(probe=False, timeout=10, allow_private_hosts=True),
        resolver=make_resolver([dns_server.nameserver], timeout=5),
    )


def _draft(page: httpx.Response | str) -> str:
    found = DRAFT.search(page if isinstance(page, str) else page.text)
    assert found is not None
    return html.unescape(found.group(1))


async def test_detection_offering_pop3_fills_the_pop3_form(
    browser: httpx.AsyncClient, dns_server: LocalDNSServer, local_detection: None
) -> None:
    dns_server.add("_pop3s._tcp.wizpop.example.", "SRV", "0 1 995 pop.wizpop.example.")
    dns_server.add("_submissions._tcp.wizpop.example.", "SRV", "0 1 465 smtp.wizpop.example.")

    fragment = await browser.post("/connect/detect", data={"email": "jo@wizpop.example"})
    assert 'data-testid="pop3-offer"' in fragment.text and "POP3 pop.wizpop.example:995" in fragment.text
    method = await browser.post("/connect/method", data={"email": "jo@wizpop.example"})
    assert method.status_code == 200 and 'action="/connect/password"' in method.text  # a password form
    manual = await browser.post("/connect/manual", data={"draft": _draft(method)})
    assert manual.status_code == 200
    assert re.search(r'name="incoming" value="pop3"\s+checked', manual.text)
    assert 'id="pop3_host" name="pop3_host" value="pop.wizpop.example"' in manual.text
    assert re.search(r'id="pop3_port" name="pop3_port" value="995"', manual.text)


async def test_the_manual_form_creates_a_pop3_mailbox(
    browser: httpx.AsyncClient,
    tenant_client: httpx.AsyncClient,
    dovecot: Dovecot,
    smtp: SubmissionServer,
    password_user: tuple[str, str],
) -> None:
    user, password = password_user
    method = await browser.post("/connect/method", data={"email": user})
    page = await browser.post(
        "/connect/manual/save",
        data={
            "draft": _draft(method),
            "incoming": "pop3",
            "pop3_host": "127.0.0.1", "pop3_port": str(dovecot.pop3_port), "pop3_security": "starttls",
            "pop3_username": user,
            "imap_host": "", "imap_port": "993", "imap_security": "ssl",  # the unused IMAP fieldset
            "use_smtp": "on",
            "smtp_host": "127.0.0.1", "smtp_port": str(smtp.port), "smtp_security": "starttls",
            "password": password,
        },
    )  # fmt: skip
    assert page.status_code == 200, page.text[:1000]
    passed = await _finished(browser, page)
    assert 'data-ok="true"' in passed, passed
    assert "Receiving (POP3)" in passed and "Receiving (IMAP)" not in passed
    assert 'data-step="pop3-pop3_stls"' in passed and 'data-step="pop3-pop3_uidl"' in passed
    assert password not in passed

    settings_page = await browser.post("/connect/settings", data=_form(passed, "/connect/settings"))
    offered = set(re.findall(r'name="after_processing" value="([^"]+)"', settings_page.text))
    assert offered == {"none", "delete"} and 'name="watch_sent"' not in settings_page.text
    draft = _draft(settings_page)
    refused = await browser.post(
        "/connect/save", data={"draft": draft, "check_interval": "60", "after_processing": "move"}
    )
    assert refused.status_code == 422 and "only leave processed messages or delete them" in refused.text
    saved = await browser.post(
        "/connect/save", data={"draft": draft, "check_interval": "60", "after_processing": "none"}
    )
    assert saved.status_code == 200, saved.text[:1000]
    mailbox = (await tenant_client.get("/v1/mailboxes")).json()["items"][0]
    assert mailbox["connector"] == "pop3" and mailbox["imap"] is None
    assert (mailbox["pop3"]["host"], mailbox["pop3"]["port"]) == ("127.0.0.1", dovecot.pop3_port)
    assert mailbox["status"] == "connected"
    # The mailbox's own test agrees, over POP3.
    tested = (await tenant_client.post(f"/v1/mailboxes/{mailbox['id']}/test")).json()
    assert tested["ok"] is True and tested["pop3"]["steps"][-1]["step"] == "pop3_stat"
