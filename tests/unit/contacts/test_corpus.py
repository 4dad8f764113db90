"""The crafted corpus (tests/data/contacts): the harvested contact set is exactly the expected one.

``received/`` holds header blocks of mail received by ``me@example.com`` (aliases
``me@alias.example`` and ``john.smith@gmail.com``), ``sent/`` mail it sent. The corpus has people
with case and display-name variants, no-reply senders, list and bulk mail, an auto-reply, a
bounce, the user's own aliases, Gmail dot/plus/googlemail variants, encoded-word names, an IDNA
domain and addresses that are not usable at all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mailport.contacts import BlockList, Contacts, Direction, Identity, harvest
from mailport.messages.headers import date, parse_block

CORPUS = Path(__file__).parents[2] / "data" / "contacts"
IDENTITY = Identity.of(["Me@Example.com"], aliases=["me@alias.example", "john.smith@gmail.com"])


def _harvest(*, fold: bool, blocks: BlockList | None = None) -> Contacts:
    contacts = Contacts()
    for direction in ("received", "sent"):
        d: Direction = "received" if direction == "received" else "sent"
        for path in sorted((CORPUS / direction).glob("*.eml")):
            block = path.read_bytes()
            seen_at = date(dict(parse_block(block))["Date"])
            assert seen_at is not None
            contacts.add_message(
                harvest(block, d, seen_at, identity=IDENTITY, blocks=blocks or BlockList(), fold=fold)
            )
    return contacts


EXPECTED_EXCLUDED = {
    "me@example.com": {"own_address"},
    "me@alias.example": {"own_alias"},
    "j.o.h.n.smith+lists@gmail.com": {"own_alias"},
    "no-reply@shop.example": {"no_reply"},
    "support.noreply@shop.example": {"no_reply"},
    "carol@poster.example": {"mailing_list"},
    "dev@lists.example": {"mailing_list"},
    "promo@deals.example": {"mailing_list"},
    "news@letters.example": {"bulk"},
    "mailer-daemon@mx.example.com": {"bounce_sender"},
    "postmaster@example.net": {"bounce_sender"},
}


def test_the_harvested_set_is_exactly_the_expected_one_with_folding() -> None:
    contacts = _harvest(fold=True)

    assert {key: contact.name for key, contact in contacts.contacts.items()} == {
        "alice@example.org": "Alice Martin",  # 'Alice Martin' twice, 'A. Martin' once, one without
        "bob@example.net": "Bob Stone",
        "joerg@xn--exmple-cua.de": "Jörg Müller",  # Q and B encoded words; A-label and U-label
        "dave@away.example": "Dave Reed",  # a contact by the sent mail; his auto-reply did not count
        "frank@example.com": "Frank Ott",
        "eringray@gmail.com": "Erin Gray",  # dots, +work and googlemail.com folded
        "grace@example.net": "Grace Hall",
        "grace-team@example.net": "Grace's Team",
    }
    excluded = {key: set(found) for key, found in contacts.excluded.items() if key not in contacts.contacts}
    expected = dict(EXPECTED_EXCLUDED)
    expected["johnsmith@gmail.com"] = expected.pop("j.o.h.n.smith+lists@gmail.com")  # folded key
    assert excluded == expected
    # Dave was also left out once, and the history can say why.
    assert contacts.excluded["dave@away.example"] == {"auto_submitted": 1}


def test_every_raw_address_and_the_counts_are_kept() -> None:
    contacts = _harvest(fold=True).contacts

    alice = contacts["alice@example.org"]
    assert alice.addresses == {"Alice@Example.ORG", "alice@example.org", "ALICE@example.org"}
    assert (alice.received_from, alice.sent_to, alice.copied, alice.two_way) == (2, 2, 0, True)
    assert alice.first_seen == datetime(2026, 11, 2, 9, tzinfo=UTC)
    assert alice.last_seen == datetime(2026, 11, 12, 9, tzinfo=UTC)
    assert contacts["bob@example.net"].copied == 2
    assert contacts["eringray@gmail.com"].addresses == {"erin.gray+work@gmail.com", "ErinGray@googlemail.com"}
    assert contacts["joerg@xn--exmple-cua.de"].addresses == {"joerg@exämple.de", "Joerg@Exämple.de"}
    dave = contacts["dave@away.example"]
    assert (dave.sent_to, dave.received_from) == (1, 0)


def test_without_folding_gmail_variants_stay_apart_but_own_aliases_still_match() -> None:
    contacts = _harvest(fold=False)

    assert {"erin.gray+work@gmail.com", "eringray@googlemail.com"} <= contacts.contacts.keys()
    assert "eringray@gmail.com" not in contacts.contacts
    assert contacts.excluded["j.o.h.n.smith+lists@gmail.com"] == {"own_alias": 1}


def test_a_tenant_block_list_leaves_out_addresses_and_domains() -> None:
    blocks = BlockList.of(["Frank@Example.com"], domains=["example.net"])
    contacts = _harvest(fold=True, blocks=blocks)

    assert "frank@example.com" not in contacts.contacts
    assert contacts.excluded["frank@example.com"] == {"blocked_address": 1}
    assert contacts.excluded["bob@example.net"] == {"blocked_domain": 2}
    assert contacts.excluded["grace@example.net"] == {"blocked_domain": 1}
    # the tenant's block list is checked before the built-in rules (postmaster is a mail system)
    assert contacts.excluded["postmaster@example.net"] == {"blocked_domain": 1}
