"""Extra headers (deny-list, injection), subject prefixes and the References chain."""

from __future__ import annotations

import pytest

from mailport.errors import InputError
from mailport.messages import Address, parse_message
from mailport.sending import Draft, compose
from mailport.sending.headers import (
    MAX_REFERENCES,
    forward_subject,
    reply_references,
    reply_subject,
    strip_prefixes,
)

FROM = Address("Support", "support@example.org")
BOB = Address("Bob", "bob@example.net")


def _send(headers: tuple[tuple[str, str], ...]) -> bytes:
    return compose(Draft(from_=FROM, to=(BOB,), text="x", headers=headers)).raw


def test_allowed_extra_headers_are_written() -> None:
    raw = _send((("X-Ticket", "T-1234"), ("List-Unsubscribe", "<mailto:u@example.org>"), ("X-Note", "Grüße")))
    msg = parse_message(raw, mailbox_id="m", folder="INBOX")
    values = dict(msg.headers)
    assert values["X-Ticket"] == "T-1234"
    assert values["List-Unsubscribe"] == "<mailto:u@example.org>"
    assert "X-Note" in values


@pytest.mark.parametrize(
    "name",
    [
        "From",
        "to",
        "CC",
        "Bcc",
        "Sender",
        "Message-ID",
        "Date",
        "MIME-Version",
        "Content-Type",
        "content-transfer-encoding",
        "Content-Disposition",
        "Received",
        "Return-Path",
        "DKIM-Signature",
        "In-Reply-To",
        "References",
        "Subject",
        "Reply-To",
        "Resent-To",
    ],
)
def test_denied_headers_are_refused_by_name(name: str) -> None:
    with pytest.raises(InputError) as info:
        _send(((name, "x"),))
    assert repr(name) in str(info.value)
    assert info.value.code == "invalid_input"


@pytest.mark.parametrize("value", ["a\r\nBcc: x@y.org", "a\nX-Evil: 1", "a\rb", "a\0b"])
def test_header_injection_is_refused(value: str) -> None:
    with pytest.raises(InputError, match="injection"):
        _send((("X-Ticket", value),))


@pytest.mark.parametrize("name", ["X Ticket", "X:Ticket", "", "Tïcket", "X-Evil\r\nBcc"])
def test_bad_header_names_are_refused(name: str) -> None:
    with pytest.raises(InputError, match="not a valid field name"):
        _send(((name, "x"),))


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Hello", "Re: Hello"),
        ("Re: Hello", "Re: Hello"),
        ("RE: Hello", "Re: Hello"),
        ("Re: Re: RE: Hello", "Re: Hello"),
        ("re:Hello", "Re: Hello"),
        ("AW: Hallo", "Re: Hallo"),
        ("Sv: Hej", "Re: Hej"),
        ("VS: Hei", "Re: Hei"),
        ("Antw: Hallo", "Re: Hallo"),
        ("Réf: Bonjour", "Re: Bonjour"),
        ("Ref: Bonjour", "Re: Bonjour"),
        ("RV: Hola", "Re: Hola"),
        ("R: Ciao", "Re: Ciao"),
        ("Re[2]: Hello", "Re: Hello"),
        ("Re^3: Hello", "Re: Hello"),
        ("Fwd: Hello", "Re: Hello"),
        ("Re: Fwd: WG: Hello", "Re: Hello"),
        ("RE：全角", "Re: 全角"),
        ("Reply needed", "Re: Reply needed"),  # "Re" only counts with a colon
        ("Remote: access", "Re: Remote: access"),
        ("", "Re:"),
    ],
)
def test_reply_subject_does_not_stack(subject: str, expected: str) -> None:
    assert reply_subject(subject) == expected


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Hello", "Fwd: Hello"),
        ("Fwd: Hello", "Fwd: Hello"),
        ("FW: Hello", "Fwd: Hello"),
        ("WG: Hallo", "Fwd: Hallo"),
        ("TR: Bonjour", "Fwd: Bonjour"),
        ("Re: Hello", "Fwd: Hello"),
        ("Fwd: Fwd: Fw: Hello", "Fwd: Hello"),
    ],
)
def test_forward_subject_does_not_stack(subject: str, expected: str) -> None:
    assert forward_subject(subject) == expected


def test_strip_prefixes_keeps_inner_text() -> None:
    assert strip_prefixes("Re: Question about Re: prefixes") == "Question about Re: prefixes"


def test_references_extend_the_parents_references() -> None:
    assert reply_references("c@x", ("a@x", "b@x"), "b@x") == ("a@x", "b@x", "c@x")


def test_references_fall_back_to_in_reply_to() -> None:
    assert reply_references("c@x", (), "b@x") == ("b@x", "c@x")


def test_references_of_a_first_message() -> None:
    assert reply_references("a@x", (), None) == ("a@x",)
    assert reply_references(None, (), None) == ()


def test_references_are_capped_keeping_the_root() -> None:
    chain = tuple(f"m{i}@x" for i in range(50))
    refs = reply_references("new@x", chain, "m49@x")
    assert len(refs) == MAX_REFERENCES
    assert refs[0] == "m0@x"
    assert refs[-1] == "new@x"
    assert refs[-2] == "m49@x"


def test_references_do_not_repeat_ids() -> None:
    assert reply_references("b@x", ("a@x", "b@x"), None) == ("a@x", "b@x")
