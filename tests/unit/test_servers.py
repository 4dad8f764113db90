"""One Security and one ServerSettings: the values the API speaks, the clients' older words
read in one place, and the JSON form sealed drafts and detection use."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mailport.imap import ImapClient
from mailport.mailboxes.schemas import ServerIn
from mailport.net.trust import Certificate
from mailport.servers import DEFAULT_PORTS, Security, ServerSettings
from mailport.smtp import SmtpClient
from tests.fixtures.tls import make_cert


def test_security_has_the_apis_three_values_and_reads_the_clients_words_in_one_place():
    assert [s.value for s in Security] == ["ssl", "starttls", "none"]
    assert Security.TLS is Security.SSL and Security.PLAIN is Security.NONE  # aliases, not values
    assert Security.parse("tls") is Security.SSL and Security.parse("PLAIN") is Security.NONE
    assert (
        Security.parse(" StartTLS ") is Security.STARTTLS and Security.parse(Security.NONE) is Security.NONE
    )
    with pytest.raises(ValueError):
        Security("tls")  # stored rows and the API take the values only
    with pytest.raises(ValueError):
        Security.parse("ssl3")


def test_the_api_refuses_the_clients_words():
    assert ServerIn(host="mail.example.com", port=993, security="ssl").security is Security.SSL
    with pytest.raises(ValidationError):
        ServerIn(host="mail.example.com", port=993, security="tls")


def test_the_clients_take_the_one_enum_and_their_old_words():
    imap = ImapClient("mail.example.com", security="tls")
    assert imap.security is Security.SSL and imap.port == DEFAULT_PORTS["imap"][Security.SSL] == 993
    assert ImapClient("mail.example.com", security=Security.NONE, allow_plaintext=True).port == 143
    smtp = SmtpClient("mail.example.com", security="starttls")
    assert smtp.security is Security.STARTTLS and smtp.port == 587
    assert SmtpClient("mail.example.com", security="plain", allow_plaintext=True).port == 25


def test_server_settings_hold_the_member_and_round_trip_through_json(tmp_path: Path):
    plain = ServerSettings("imap.example.com", 993, "ssl")  # type: ignore[arg-type]
    assert plain.security is Security.SSL and plain.to_dict() == {
        "host": "imap.example.com",
        "port": 993,
        "security": "ssl",
        "username": None,
    }
    assert ServerSettings.from_dict(plain.to_dict()) == plain
    pem, _, _ = make_cert(tmp_path, "mail", names=["imap.example.com"])
    pinned = ServerSettings(
        "imap.example.com", 143, Security.STARTTLS, "me", Certificate.from_pem(pem.cert.read_text())
    )
    body = pinned.to_dict()
    assert body["trusted_certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert ServerSettings.from_dict(body) == pinned
    with pytest.raises(ValueError):
        ServerSettings("imap.example.com", 993, "tls")  # type: ignore[arg-type]
