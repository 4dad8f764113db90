"""Exclusion reasons and the roles each policy counts."""

from __future__ import annotations

import pytest

from mailport.contacts.rules import BlockList, Identity, Reason, address_reason, counted_roles, message_reason

ME = Identity.of(["me@example.com"], aliases=["Jane.Doe@gmail.com"], domains=["example.com"])
COLLEAGUES_OUT = Identity.of(["me@example.com"], domains=["@Example.com"], exclude_own_domain=True)
BLOCKS = BlockList.of(["spam@bad.example"], domains=["evil.example"])


@pytest.mark.parametrize(
    ("key", "identity", "reason"),
    [
        ("me@example.com", ME, "own_address"),
        ("janedoe+shop@gmail.com", ME, "own_alias"),  # aliases compare folded, always
        ("j.a.n.e.doe@googlemail.com", ME, "own_alias"),
        ("spam@bad.example", ME, "blocked_address"),
        ("anyone@evil.example", ME, "blocked_domain"),
        ("anyone@mx.evil.example", ME, "blocked_domain"),  # subdomains too
        ("anyone@notevil.example", ME, None),
        ("colleague@example.com", ME, None),  # own domain is kept unless asked
        ("colleague@example.com", COLLEAGUES_OUT, "own_domain"),
        ("colleague@eu.example.com", COLLEAGUES_OUT, "own_domain"),
        ("mailer-daemon@mx.example.org", ME, "bounce_sender"),
        ("postmaster@example.org", ME, "bounce_sender"),
        ("noreply@github.com", ME, "no_reply"),
        ("no-reply@accounts.example", ME, "no_reply"),
        ("do_not_reply@bank.example", ME, "no_reply"),
        ("donotreply@bank.example", ME, "no_reply"),
        ("billing.noreply@shop.example", ME, "no_reply"),
        ("noreply+abc@shop.example", ME, "no_reply"),
        ("no.response@shop.example", ME, "no_reply"),
        ("noreplyingpeople@shop.example", ME, None),  # a word, not a prefix
        ("arnoreply@shop.example", ME, None),
        ("nora@example.org", ME, None),
    ],
)
def test_address_reason(key: str, identity: Identity, reason: Reason | None) -> None:
    assert address_reason(key, identity, BLOCKS) == reason


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"from": "Ann <ann@example.org>"}, None),
        ({"list-id": "<dev.lists.example>"}, "mailing_list"),
        ({"list-unsubscribe": "<mailto:u@x.org>", "precedence": "bulk"}, "mailing_list"),
        ({"list-unsubscribe": "<mailto:u@x.org>"}, None),  # alone: many people's clients add it
        ({"precedence": "Bulk"}, "bulk"),
        ({"precedence": "junk"}, "bulk"),
        ({"precedence": "list"}, "bulk"),
        ({"precedence": "first-class"}, None),
        ({"auto-submitted": "auto-replied"}, "auto_submitted"),
        ({"auto-submitted": "auto-generated"}, "auto_submitted"),
        ({"auto-submitted": "no"}, None),
        ({"x-autoreply": "yes"}, "auto_submitted"),
        ({"precedence": "auto_reply"}, "auto_submitted"),
        ({"from": "MAILER-DAEMON@mx.example.org"}, "bounce_sender"),
        ({"sender": "postmaster@example.org", "from": "Ann <ann@example.org>"}, "bounce_sender"),
        ({"return-path": "<>"}, "bounce_sender"),
        ({"return-path": "<>", "auto-submitted": "auto-replied"}, "auto_submitted"),  # RFC 3834
        ({"content-type": "multipart/report; report-type=delivery-status"}, "bounce_sender"),
        ({"content-type": "Message/Delivery-Status"}, "bounce_sender"),
        ({"list-id": "<l.x.org>", "auto-submitted": "auto-replied"}, "auto_submitted"),
    ],
)
def test_message_reason(fields: dict[str, str], reason: Reason | None) -> None:
    assert message_reason(fields) == reason


def test_policy_decides_the_counted_roles() -> None:
    assert counted_roles("received", "sent_and_received") == ("from", "reply_to", "to", "cc")
    assert counted_roles("sent", "sent_and_received") == ("to", "cc", "bcc")
    assert counted_roles("sent", "sent_only") == ("to", "cc", "bcc")
    assert counted_roles("received", "sent_only") == ()
    assert counted_roles("sent", "off") == counted_roles("received", "off") == ()


def test_invalid_own_addresses_and_domains_are_dropped() -> None:
    identity = Identity.of(["not an address", "Me@Example.com"], domains=["", "localhost", "Exämple.de"])
    assert identity.addresses == {"me@example.com"}
    assert identity.domains == {"xn--exmple-cua.de"}
