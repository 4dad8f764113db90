"""``mailport.net.trust`` without a network: certificates as a person judges them, what a pin
accepts as input, which contexts are shared, and a bad ``MAILPORT_MAIL_CA_FILE`` at start-up."""

from __future__ import annotations

import hashlib
import re
import ssl
import subprocess
from pathlib import Path

import pytest

from mailport.config import Settings
from mailport.errors import ConfigurationError, InputError
from mailport.net.trust import Certificate, MailTrust, PinnedContext
from tests.fixtures.tls import make_cert


@pytest.fixture
def cert_file(tmp_path: Path) -> Path:
    pem, _, _ = make_cert(tmp_path, "mail", names=["mail.example.org", "192.0.2.7"])
    return pem.cert


def test_a_certificate_shows_what_a_person_compares(cert_file: Path) -> None:
    cert = Certificate.from_pem(cert_file.read_text())
    openssl = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(cert_file)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert openssl.strip().endswith("=" + cert.sha256)  # the same spelling as openssl's
    assert cert.sha256 == ":".join(f"{b:02X}" for b in hashlib.sha256(cert.der).digest())
    assert (cert.subject, cert.issuer, cert.self_signed) == ("mail.example.org", "mail.example.org", True)
    assert cert.names == ("mail.example.org", "192.0.2.7")
    assert cert.not_before < cert.not_after
    assert "pem" not in cert.summary() and cert.to_dict()["pem"] == cert.pem
    assert Certificate.from_pem(cert.pem) == cert
    assert cert.sha256 in repr(cert) and "BEGIN" not in repr(cert)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a certificate",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\nzé\n-----END CERTIFICATE-----\n",
    ],
)
def test_a_pin_must_be_one_readable_certificate(text: str) -> None:
    with pytest.raises(InputError) as info:
        Certificate.from_pem(text)
    assert info.value.details["field"] == "trusted_certificate"


def test_a_bundle_is_not_a_pin(cert_file: Path) -> None:
    with pytest.raises(InputError, match="exactly one"):
        Certificate.from_pem(cert_file.read_text() * 2)


def test_contexts_are_shared_and_pins_replace_ca_verification(cert_file: Path) -> None:
    trust = MailTrust()
    assert trust.context() is trust.context()
    assert trust.context().verify_mode == ssl.CERT_REQUIRED and trust.context().check_hostname
    pin = Certificate.from_pem(cert_file.read_text())
    pinned = trust.context(pin)
    assert pinned is MailTrust().context(pin)  # one per fingerprint for the whole process
    assert isinstance(pinned, PinnedContext) and pinned.pin == pin.sha256
    assert pinned.minimum_version == ssl.TLSVersion.TLSv1_2
    assert pinned.cert_store_stats()["x509_ca"] == 0  # loads no CA store at all
    marks: list[int] = []
    timed = trust.context(pin, on_handshake=lambda: marks.append(1))
    assert timed is not pinned and isinstance(timed, PinnedContext)


def test_an_unusable_mail_ca_file_stops_start_up(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    settings = Settings(_env_file=None, data_dir=tmp_path, mail_ca_file=bad)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="MAILPORT_MAIL_CA_FILE"):
        MailTrust.from_settings(settings)
    settings.mail_ca_file = tmp_path / "missing.pem"
    with pytest.raises(ConfigurationError, match="cannot read"):
        MailTrust.from_settings(settings)


# Where a TLS context may be built outside mailport.net.trust: HTTPS to web servers, not mail.
HTTPS_ONLY = {
    "delivery/http1.py",  # webhooks: the system's CAs, as for any HTTPS client
    "detect/detector.py",  # autoconfig over HTTPS
}


def test_mail_tls_contexts_are_built_in_one_place() -> None:
    """A new mail connection that builds its own SSLContext would trust something else than the
    watcher, the checks and the wizard (the bug this module fixed): it fails here first."""
    src = Path(__file__).resolve().parents[3] / "src" / "mailport"
    pattern = re.compile(r"create_default_context\(|SSLContext\(|load_verify_locations\(")
    found = {str(path.relative_to(src)) for path in src.rglob("*.py") if pattern.search(path.read_text())}
    assert found - HTTPS_ONLY == {"net/trust.py"}


def test_a_pin_belongs_to_its_server(cert_file: Path) -> None:
    """PATCH semantics: a changed server without ``trusted_certificate`` keeps the pin while the
    host stays the same, drops it for another host; ``null`` removes it."""
    from mailport.mailboxes.models import Security, ServerSettings
    from mailport.mailboxes.schemas import ServerIn

    pin = Certificate.from_pem(cert_file.read_text())
    current = ServerSettings("mail.example.org", 993, Security.SSL, trusted_certificate=pin)
    same_host = ServerIn(host="mail.example.org", port=143, security=Security.STARTTLS)
    assert same_host.to_model(current).trusted_certificate == pin
    other_host = ServerIn(host="imap.example.net", port=993, security=Security.SSL)
    assert other_host.to_model(current).trusted_certificate is None
    removed = ServerIn(host="mail.example.org", port=993, security=Security.SSL, trusted_certificate=None)
    assert removed.to_model(current).trusted_certificate is None
    replaced = ServerIn(
        host="imap.example.net", port=993, security=Security.SSL, trusted_certificate=cert_file.read_text()
    )
    assert replaced.to_model(current).trusted_certificate == pin
