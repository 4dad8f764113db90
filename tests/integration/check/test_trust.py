"""One trust for every mail connection (:mod:`mailport.net.trust`), against real TLS servers.

* ``MAILPORT_MAIL_CA_FILE`` adds to the system's CAs (it used to replace them: 2 CAs instead of
  the system's ~140, and every public-CA mailbox of the instance failed);
* ``POST /v1/check`` and ``POST /v1/mailboxes/{id}/test`` honour it (they used to ignore it, so a
  mailbox the watcher read fine was flipped to ``error`` by its own Test button);
* a pinned certificate per server (the bed's Dovecot and SMTP present a self-signed
  certificate): the checks pass with it, a different certificate fails with
  ``certificate_changed``, and a failed check reports the presented certificate to pin;
* SMTP sending with a pin; ``mailport check --only imap|smtp`` with per-server CAs and pins.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailport.check import CheckCredentials, ConnectionChecker, ServerTarget
from mailport.crypto import Secret
from mailport.errors import CertificateChangedError
from mailport.imap import ImapClient, PasswordAuth
from mailport.net.guard import HostGuard
from mailport.net.trust import Certificate, MailTrust
from mailport.smtp import send_message
from tests.fixtures.process import clean_environment, run_mailport
from tests.fixtures.tls import Pem
from tests.integration.check.conftest import BedAccount
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer


def bed_certificate(dovecot: Dovecot) -> Certificate:
    """What the bed's Dovecot and SMTP server present (self-signed, made per run)."""
    return Certificate.from_pem(Path(dovecot.ca_file).read_text())


def other_certificate(pki: dict[str, Pem]) -> Certificate:
    return Certificate.from_pem(pki["self_signed"].cert.read_text())


@pytest.fixture
def check_overrides(request: pytest.FixtureRequest, dovecot: Dovecot) -> dict[str, Any]:
    """Private hosts allowed (the bed is on 127.0.0.1); with ``indirect`` param True, the bed's
    certificate is the operator's extra CA (``MAILPORT_MAIL_CA_FILE``)."""
    overrides: dict[str, Any] = {"allow_private_hosts": True}
    if getattr(request, "param", False):
        overrides["mail_ca_file"] = Path(dovecot.ca_file)
    return overrides


async def _handshake(port: int, context: ssl.SSLContext, server_hostname: str = "127.0.0.1") -> None:
    _reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=server_hostname
    )
    writer.close()


# --------------------------------------------------------------------------- the CA file adds


async def test_the_mail_ca_file_adds_to_the_system_store(
    dovecot: Dovecot, serve: Any, pki: dict[str, Pem], monkeypatch: pytest.MonkeyPatch
) -> None:
    system = MailTrust().ca_count()
    with_file = MailTrust(ca_files=[dovecot.ca_file])
    assert system >= 100  # Debian's ca-certificates: ~140
    assert with_file.ca_count() == system + 1
    # A "public" CA: make the test CA part of the system store (OpenSSL reads SSL_CERT_FILE when
    # a context loads the defaults), then add the bed's CA file: both servers verify.
    monkeypatch.setenv("SSL_CERT_FILE", str(pki["ca"].cert))
    public_port = await serve(lambda r, w: w.close(), tls=pki["good"])
    trust = MailTrust(ca_files=[dovecot.ca_file])
    await _handshake(public_port, trust.context())
    await _handshake(dovecot.imaps_port, trust.context())
    # The old behaviour (create_default_context(cafile=…)) trusted the CA file only.
    replaced = ssl.create_default_context(cafile=dovecot.ca_file)
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(public_port, replaced)


# --------------------------------------------------------------------------- pins, directly


async def test_a_pin_accepts_exactly_that_certificate_whatever_its_names_and_dates(
    serve: Any, pki: dict[str, Pem]
) -> None:
    trust = MailTrust()
    for name in ("other_host", "expired", "self_signed"):  # names imap.hoster.test; expired; unknown CA
        port = await serve(lambda r, w: w.close(), tls=pki[name])
        pinned = Certificate.from_pem(pki[name].cert.read_text())
        await _handshake(port, trust.context(pinned))
        with pytest.raises(ssl.SSLCertVerificationError):
            await _handshake(port, trust.context())  # without the pin: refused as before
    good = await serve(lambda r, w: w.close(), tls=pki["good"])
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        await _handshake(good, trust.context(other_certificate(pki)))
    assert "certificate changed" in str(info.value.verify_message)


async def test_imap_and_smtp_clients_with_a_pin(
    dovecot: Dovecot, smtp: SubmissionServer, password_user: tuple[str, str], pki: dict[str, Pem]
) -> None:
    user, password = password_user
    trust = MailTrust()
    client = await ImapClient.open(
        "127.0.0.1",
        dovecot.imaps_port,
        ssl_context=trust.context(bed_certificate(dovecot)),
        auth=PasswordAuth(user, Secret(password)),
    )
    assert client.tls is not None and client.tls.pinned
    await client.logout()
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = user, user, "pinned smtp"
    message.set_content("sent over a pinned connection")
    sent = await send_message(
        message,
        host="127.0.0.1",
        port=smtp.tls_port,
        security="tls",
        ssl_context=trust.context(bed_certificate(dovecot)),
        auth=PasswordAuth(user, Secret(password)),
    )
    assert sent.code == 250
    with pytest.raises(CertificateChangedError) as info:
        await send_message(
            message,
            host="127.0.0.1",
            port=smtp.port,
            security="starttls",
            ssl_context=trust.context(other_certificate(pki)),
            auth=PasswordAuth(user, Secret(password)),
        )
    assert info.value.code == "certificate_changed"
    assert bed_certificate(dovecot).sha256 in info.value.message


async def test_the_checker_with_a_pin_passes_and_a_changed_certificate_fails_clearly(
    dovecot: Dovecot, smtp: SubmissionServer, password_user: tuple[str, str], pki: dict[str, Pem]
) -> None:
    user, password = password_user
    checker = ConnectionChecker(HostGuard.for_operator(), timeout=8, step_timeout=4)
    pin = bed_certificate(dovecot)
    ok = await checker.check(
        ServerTarget("127.0.0.1", dovecot.imap_port, "starttls", trusted_certificate=pin),
        ServerTarget("127.0.0.1", smtp.tls_port, "ssl", trusted_certificate=pin),
        CheckCredentials(user, password=Secret(password)),
    )
    assert ok.ok, ok.to_dict()
    assert ok.imap is not None and "pinned certificate" in ok.imap.steps[3].detail
    changed = await checker.check(
        ServerTarget("127.0.0.1", dovecot.imaps_port, "ssl", trusted_certificate=other_certificate(pki)),
        ServerTarget("127.0.0.1", smtp.port, "starttls", trusted_certificate=other_certificate(pki)),
        CheckCredentials(user, password=Secret(password)),
    )
    assert changed.imap is not None and changed.smtp is not None
    for result, step in ((changed.imap, "tls_handshake"), (changed.smtp, "smtp_starttls")):
        failed = result.failure
        assert failed is not None and (failed.step, failed.code) == (step, "certificate_changed")
        assert pin.sha256 in failed.detail and other_certificate(pki).sha256 in failed.detail
        assert failed.certificate is not None and failed.certificate.sha256 == pin.sha256


# --------------------------------------------------------------------------- POST /v1/check


async def test_check_reports_the_presented_certificate_and_passes_once_it_is_pinned(
    tenant_client: httpx.AsyncClient,
    dovecot: Dovecot,
    bed_account: BedAccount,
) -> None:
    body = bed_account.check_body()
    failed = (await tenant_client.post("/v1/check", json=body)).json()
    assert failed["ok"] is False
    presented = {}
    for protocol, step in (("imap", "tls_handshake"), ("smtp", "smtp_starttls")):
        last = failed[protocol]["steps"][-1]
        assert (last["step"], last["code"]) == (step, "certificate_self_signed")
        presented = last["certificate"]
        assert presented["sha256"] == bed_certificate(dovecot).sha256
        assert presented["subject"] == "localhost" and presented["issuer"] == "localhost"
        assert presented["self_signed"] is True and presented["not_after"]
        assert presented["pem"].startswith("-----BEGIN CERTIFICATE-----")
    body["imap"]["trusted_certificate"] = presented["pem"]
    body["smtp"]["trusted_certificate"] = presented["pem"]
    pinned = await tenant_client.post("/v1/check", json=body)
    assert pinned.status_code == 200 and pinned.json()["ok"] is True, pinned.text


@pytest.mark.parametrize("check_overrides", [True], indirect=True)
async def test_check_honours_the_mail_ca_file(
    tenant_client: httpx.AsyncClient,
    bed_account: BedAccount,
) -> None:
    response = await tenant_client.post("/v1/check", json=bed_account.check_body())
    assert response.status_code == 200 and response.json()["ok"] is True, response.text


async def test_a_bad_pin_is_422(tenant_client: httpx.AsyncClient, dovecot: Dovecot) -> None:
    for bad in ("not a certificate", Path(dovecot.ca_file).read_text() * 2):
        body = {
            "email": "a@b.test",
            "password": "x",
            "imap": {"host": "127.0.0.1", "port": 993, "security": "ssl", "trusted_certificate": bad},
        }
        response = await tenant_client.post("/v1/check", json=body)
        assert response.status_code == 422, response.text
        assert "trusted_certificate" in response.text


# --------------------------------------------------------------------------- stored mailboxes


@pytest.mark.parametrize("check_overrides", [True], indirect=True)
async def test_the_test_button_honours_the_mail_ca_file(
    tenant_client: httpx.AsyncClient,
    bed_account: BedAccount,
) -> None:
    created = (await tenant_client.post("/v1/mailboxes", json=bed_account.mailbox_body())).json()
    response = await tenant_client.post(f"/v1/mailboxes/{created['id']}/test")
    assert response.json()["ok"] is True, response.text
    assert (await tenant_client.get(f"/v1/mailboxes/{created['id']}")).json()["status"] == "connected"


async def test_a_pinned_mailbox_tests_green_and_a_changed_pin_flips_it_to_error(
    tenant_client: httpx.AsyncClient,
    dovecot: Dovecot,
    bed_account: BedAccount,
    pki: dict[str, Pem],
) -> None:
    pem = Path(dovecot.ca_file).read_text()
    body = bed_account.mailbox_body()
    body["imap"]["trusted_certificate"] = pem
    body["smtp"]["trusted_certificate"] = pem
    response = await tenant_client.post("/v1/mailboxes", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    shown = created["imap"]["trusted_certificate"]
    assert shown["sha256"] == bed_certificate(dovecot).sha256 and shown["subject"] == "localhost"
    assert "pem" not in shown and "BEGIN CERTIFICATE" not in json.dumps(created)
    listed = (await tenant_client.get("/v1/mailboxes")).json()["items"][0]
    assert listed["smtp"]["trusted_certificate"]["sha256"] == shown["sha256"]
    mailbox_id = created["id"]

    tested = (await tenant_client.post(f"/v1/mailboxes/{mailbox_id}/test")).json()
    assert tested["ok"] is True, tested
    assert (await tenant_client.get(f"/v1/mailboxes/{mailbox_id}")).json()["status"] == "connected"

    # Another port, same host, pin not sent: kept. Then pin a different certificate.
    patched = await tenant_client.patch(
        f"/v1/mailboxes/{mailbox_id}",
        json={"imap": {"host": "127.0.0.1", "port": dovecot.imap_port, "security": "starttls"}},
    )
    assert patched.json()["imap"]["trusted_certificate"]["sha256"] == shown["sha256"]
    assert (await tenant_client.post(f"/v1/mailboxes/{mailbox_id}/test")).json()["ok"] is True
    other = pki["self_signed"].cert.read_text()
    await tenant_client.patch(
        f"/v1/mailboxes/{mailbox_id}",
        json={
            "imap": {
                "host": "127.0.0.1",
                "port": dovecot.imap_port,
                "security": "starttls",
                "trusted_certificate": other,
            }
        },
    )
    tested = (await tenant_client.post(f"/v1/mailboxes/{mailbox_id}/test")).json()
    failed = tested["imap"]["steps"][-1]
    assert (failed["step"], failed["code"]) == ("starttls", "certificate_changed")
    assert failed["certificate"]["sha256"] == shown["sha256"]
    mailbox = (await tenant_client.get(f"/v1/mailboxes/{mailbox_id}")).json()
    assert mailbox["status"] == "error" and "certificate_changed" in mailbox["last_error"]

    # null removes the pin: the CAs decide again (the bed's certificate is no CA's).
    removed = await tenant_client.patch(
        f"/v1/mailboxes/{mailbox_id}",
        json={
            "imap": {
                "host": "127.0.0.1",
                "port": dovecot.imaps_port,
                "security": "ssl",
                "trusted_certificate": None,
            }
        },
    )
    assert removed.json()["imap"]["trusted_certificate"] is None
    tested = (await tenant_client.post(f"/v1/mailboxes/{mailbox_id}/test")).json()
    assert tested["imap"]["steps"][-1]["code"] == "certificate_self_signed"


# --------------------------------------------------------------------------- mailport check


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = clean_environment()
    base.update({"MAILPORT_CHECK_TIMEOUT": "10", "MAILPORT_DETECT_PROBE": "false", **(env or {})})
    return run_mailport("check", *args, env=base)


@pytest.mark.slow
def test_cli_checks_imap_alone_and_smtp_alone_with_their_own_trust(
    dovecot: Dovecot, smtp: SubmissionServer, password_user: tuple[str, str], pki: dict[str, Pem]
) -> None:
    user, password = password_user
    imap = ["--imap-host", "127.0.0.1", "--imap-port", str(dovecot.imaps_port), "--imap-security", "ssl"]
    smtp_flags = ["--smtp-host", "127.0.0.1", "--smtp-port", str(smtp.tls_port), "--smtp-security", "ssl"]

    def check(*flags: str, **env: str) -> subprocess.CompletedProcess[str]:
        """``mailport check USER FLAGS``, the password from the environment."""
        return _cli(user, *flags, "--password-env", "BOX_PW", env={"BOX_PW": password, **env})

    alone = check(*imap, "--only", "imap", "--imap-trust-cert", dovecot.ca_file, "--json")
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert json.loads(alone.stdout)["smtp"] is None

    sending = check(*smtp_flags, "--only", "smtp", "--smtp-ca-file", dovecot.ca_file, "--json")
    assert sending.returncode == 0, sending.stdout + sending.stderr
    assert json.loads(sending.stdout)["imap"] is None

    # Separate CA options: the SMTP CA does not apply to IMAP.
    both = check(*imap, *smtp_flags, "--smtp-ca-file", dovecot.ca_file, "--imap-ca-file", str(pki["ca"].cert))
    assert both.returncode == 1
    assert "IMAP 127.0.0.1" in both.stdout and "code: certificate_self_signed" in both.stdout
    assert f"certificate: SHA-256 {bed_certificate(dovecot).sha256}" in both.stdout
    assert "--imap-trust-cert FILE" in both.stdout
    assert (
        "SMTP 127.0.0.1" in both.stdout
        and "SMTP 127.0.0.1:" + str(smtp.tls_port) + " (ssl): ok" in both.stdout
    )

    # MAILPORT_MAIL_CA_FILE applies to the CLI too, and adds to the system store.
    via_env = check(*imap, "--only", "imap", MAILPORT_MAIL_CA_FILE=dovecot.ca_file)
    assert via_env.returncode == 0, via_env.stdout + via_env.stderr
