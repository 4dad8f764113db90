"""The autoconfig parser on real ISPDB documents (as shipped) and on broken input."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailport.detect.address import parse_address
from mailport.detect.autoconfig import AutoconfigParseError, parse
from mailport.detect.model import ServerTemplate, substitute
from mailport.errors import InvalidEmailError

DATA = Path(__file__).parent / "data"
ICLOUD = (DATA / "ispdb/me.com.xml").read_bytes()
GMAIL = (DATA / "ispdb/googlemail.com.xml").read_bytes()


@pytest.mark.parametrize("path", sorted((DATA / "ispdb").glob("*.xml")), ids=lambda p: p.name)
def test_every_sample_ispdb_file_parses(path: Path) -> None:
    doc = parse(path.read_bytes())
    assert doc.imap and doc.smtp and doc.domains
    assert all(s.port > 0 and s.security in ("ssl", "starttls", "none") for s in doc.imap + doc.smtp)


def test_parses_icloud() -> None:
    doc = parse(ICLOUD)
    assert doc.provider_id == "me.com" and doc.display_name == "Apple iCloud"
    assert doc.domains == ("mac.com", "me.com", "icloud.com")
    assert doc.imap == (ServerTemplate("imap.mail.me.com", 993, "ssl", "%EMAILLOCALPART%", ("password",)),)
    assert doc.smtp == (ServerTemplate("smtp.mail.me.com", 587, "starttls", "%EMAILADDRESS%", ("password",)),)
    assert doc.documentation == ("https://support.apple.com/HT202304",)


def test_parses_gmail_keeps_imap_and_pop3_apart_and_reads_oauth_and_enable() -> None:
    doc = parse(GMAIL)
    assert [s.host for s in doc.imap] == ["imap.gmail.com"]
    assert [(s.host, s.port, s.security) for s in doc.pop3] == [("pop.gmail.com", 995, "ssl")]
    assert doc.imap[0].auth == ("oauth2", "password")
    assert doc.oauth_issuer == "accounts.google.com"
    assert doc.domains[:2] == ("gmail.com", "googlemail.com")
    assert doc.hints[0].code == "enable_imap"
    assert doc.hints[0].url == "https://mail.google.com/mail/?ui=2&shva=1#settings/fwdandpop"


@pytest.mark.parametrize(
    "xml",
    [
        b"",
        b"<clientConfig><emailProvider>",
        b"not xml at all",
        b"<html><body>404</body></html>",
        b"<clientConfig version='1.1'></clientConfig>",
        b"<clientConfig><emailProvider id='x'><incomingServer type='exchange'><hostname>p</hostname>"
        b"<port>443</port><socketType>SSL</socketType></incomingServer></emailProvider></clientConfig>",
        b"<clientConfig><emailProvider id='x'><incomingServer type='imap'><hostname>h</hostname>"
        b"<port>99999</port><socketType>SSL</socketType></incomingServer></emailProvider></clientConfig>",
        b"<clientConfig><emailProvider id='x'><incomingServer type='imap'><hostname>h</hostname>"
        b"<port>993</port><socketType>carrier-pigeon</socketType></incomingServer></emailProvider></clientConfig>",
    ],
)
def test_malformed_or_useless_documents_are_rejected(xml: bytes) -> None:
    with pytest.raises(AutoconfigParseError):
        parse(xml)


def test_entity_expansion_is_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
        b"<clientConfig><emailProvider id='x'><domain>&lol2;</domain></emailProvider></clientConfig>"
    )
    with pytest.raises(AutoconfigParseError):
        parse(bomb)


def test_oversized_document_is_rejected() -> None:
    with pytest.raises(AutoconfigParseError):
        parse(b"<clientConfig>" + b" " * 300_000 + b"</clientConfig>")


def test_placeholder_substitution() -> None:
    address = parse_address("Jane.Doe@Bücher.example")
    assert substitute("%EMAILADDRESS%", address) == "Jane.Doe@bücher.example"
    assert substitute("%EMAILLOCALPART%", address) == "Jane.Doe"
    assert substitute("%EMAILLOCALPART%+%EMAILDOMAIN%", address) == "Jane.Doe+bücher.example"
    assert substitute("imap.%EMAILDOMAIN%", address) == "imap.bücher.example"
    assert substitute("fixed-user", address) == "fixed-user"


def test_address_parsing_gives_the_idna_domain() -> None:
    address = parse_address("  support@Bücher.Example ")
    assert address.domain == "xn--bcher-kva.example"
    assert address.unicode_domain == "bücher.example"
    assert address.local_part == "support"


@pytest.mark.parametrize(
    "bad", ["", "   ", "no-at-sign", "a@", "@b.com", "a@@b.com", "a b@c.com", "a@localhost", "x" * 400]
)
def test_invalid_addresses(bad: str) -> None:
    with pytest.raises(InvalidEmailError) as info:
        parse_address(bad)
    assert info.value.code == "invalid_email" and info.value.http_status == 422
