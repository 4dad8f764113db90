"""Pure field checks: email, IDNA host names, after_processing grammar, text hygiene."""

from __future__ import annotations

import pytest

from mailport.mailboxes.validation import normalize_host, validate_after_processing
from mailport.validation import check_text, clean_line, normalize_email


@pytest.mark.parametrize(
    "given, expected",
    [
        ("imap.example.com", "imap.example.com"),
        ("IMAP.Example.COM.", "imap.example.com"),
        ("mail.bücher.de", "mail.xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("127.0.0.1", "127.0.0.1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("::1", "::1"),
        ("localhost", "localhost"),
    ],
)
def test_hosts_are_normalized(given: str, expected: str):
    assert normalize_host(given) == expected


@pytest.mark.parametrize(
    "bad",
    ["", ".", "a b.com", "a_b.com", "-a.com", "a-.com", "a..com", "x" * 64 + ".com", "1.2.3.999", "h:993",
     "a\x00.com", "http://imap.example.com", "a" * 254],
)  # fmt: skip
def test_bad_hosts_are_refused(bad: str):
    with pytest.raises(ValueError):
        normalize_host(bad)


def test_emails_are_normalized_and_test_domains_allowed():
    assert normalize_email("User@Example.COM") == "User@example.com"
    assert normalize_email("u1@dyn.example.test") == "u1@dyn.example.test"
    assert normalize_email("jörg@bücher.de") == "jörg@bücher.de"
    for bad in ("", "plain", "a@", "@b.com", "a b@c.com", "a@b@c.com", "a@-b.com"):
        with pytest.raises(ValueError):
            normalize_email(bad)


@pytest.mark.parametrize(
    "given, expected",
    [("none", "none"), ("mark_read", "mark_read"), ("delete", "delete"), ("move:Archive", "move:Archive"),
     (" move: Done/2026 ", "move:Done/2026"), ("move:Ärchiv", "move:Ärchiv")],
)  # fmt: skip
def test_after_processing_grammar(given: str, expected: str):
    assert validate_after_processing(given) == expected


@pytest.mark.parametrize(
    "bad", ["", "archive", "move:", "move: ", "MOVE:x", "mark-read", "move:a\nb", "none "[:0]]
)
def test_after_processing_refuses_anything_else(bad: str):
    with pytest.raises(ValueError):
        validate_after_processing(bad)


def test_text_hygiene():
    assert clean_line("  Acme  ") == "Acme"
    for bad in ("a\nb", "a\rb", "a\x00b", "\ud800", "tab\there"):
        with pytest.raises(ValueError):
            clean_line(bad)
    with pytest.raises(ValueError):
        check_text("\udfff")
