"""The aggregate per address, and the order the documented score gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailport.contacts import Contact, Contacts, Observation, Role, score
from mailport.contacts.rules import Direction

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _obs(key: str, direction: Direction, days_ago: float, role: Role = "to", name: str = "") -> Observation:
    return Observation(key, key, name, role, direction, NOW - timedelta(days=days_ago))


def _feed(contacts: Contacts, key: str, direction: Direction, count: int, days_ago: int, role: Role) -> None:
    for _ in range(count):
        contacts.add_message([_obs(key, direction, days_ago, role)])


def test_one_message_counts_an_address_once_with_its_strongest_role() -> None:
    contacts = Contacts()
    at = NOW - timedelta(days=1)
    contacts.add_message(
        [
            Observation("ann@x.org", "ann@x.org", "", "cc", "received", at),
            Observation("ann@x.org", "Ann@X.org", "Ann", "from", "received", at),
            Observation("ann@x.org", "ann@x.org", "Ann B.", "reply_to", "received", at),
        ]
    )
    ann = contacts.contacts["ann@x.org"]
    assert (ann.received_from, ann.copied, ann.sent_to) == (1, 0, 0)
    assert ann.names == {"Ann": 1}  # one name per address per message
    assert ann.addresses == {"ann@x.org", "Ann@X.org"}


def test_display_name_by_frequency_then_length() -> None:
    contact = Contact("a@x.org", NOW, NOW)
    contact.names.update({"Ann": 3, "Ann Brown": 2})
    assert contact.name == "Ann"
    contact.names.update({"Ann Brown": 1})
    assert contact.name == "Ann Brown"  # a tie goes to the fuller name
    assert Contact("b@x.org", NOW, NOW).name == ""


def test_the_score_orders_clear_cases() -> None:
    contacts = Contacts()
    # two-way and recent: written to 5 times, heard from 5 times, last week
    _feed(contacts, "partner@x.org", "sent", 5, 7, "to")
    _feed(contacts, "partner@x.org", "received", 5, 7, "from")
    # only written to, as often and as recently: below the two-way partner
    _feed(contacts, "written@x.org", "sent", 5, 7, "to")
    # only heard from, as often and as recently: below the one written to
    _feed(contacts, "heard@x.org", "received", 5, 7, "from")
    # a fellow recipient as often and as recently: below the sender
    _feed(contacts, "copied@x.org", "received", 5, 7, "cc")
    # a two-way partner of a year ago with ten times the mail: below today's correspondents,
    # above a fellow recipient
    _feed(contacts, "old@x.org", "sent", 50, 365, "to")
    _feed(contacts, "old@x.org", "received", 50, 365, "from")
    # six times the received mail does not outrank someone the user wrote to
    _feed(contacts, "chatty@x.org", "received", 30, 7, "from")

    order = [c.key for c in contacts.ranked(NOW)]
    assert order == [
        "partner@x.org",
        "written@x.org",
        "chatty@x.org",
        "heard@x.org",
        "old@x.org",
        "copied@x.org",
    ]


def test_score_formula_values() -> None:
    contact = Contact("a@x.org", NOW, NOW, sent_to=1, received_from=1)
    assert round(score(contact, NOW), 6) == round((2 + 1) * 0.6931471805599453 * 1.5, 6)
    assert round(score(contact, NOW + timedelta(days=90)), 6) == round(score(contact, NOW) / 2, 6)
    assert score(contact, NOW - timedelta(days=3)) == score(contact, NOW)  # no bonus for the future


def test_merging_aggregates_is_order_independent() -> None:
    a = Contacts()
    b = Contacts()
    a.add_message([_obs("ann@x.org", "sent", 10, name="Ann")])
    b.add_message([_obs("ann@x.org", "received", 2, role="from", name="Ann B")])
    first, second = a.contacts["ann@x.org"], b.contacts["ann@x.org"]
    merged = Contact(first.key, first.first_seen, first.last_seen)
    merged.merge(first)
    merged.merge(second)
    assert (merged.sent_to, merged.received_from, merged.two_way) == (1, 1, True)
    assert merged.first_seen == NOW - timedelta(days=10)
    assert merged.last_seen == NOW - timedelta(days=2)
    assert merged.names == {"Ann": 1, "Ann B": 1}


def test_the_stored_rank_key_orders_as_the_score_does_at_any_moment() -> None:
    """contacts.rank is written once per change, yet sorting by it must equal sorting by the
    decaying score today and a year later."""
    import random

    from mailport.contacts.store import rank_key

    rng = random.Random(18)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    people = []
    for i in range(200):
        last = base + timedelta(days=rng.randint(0, 700), seconds=i)
        contact = Contact(
            f"p{i}@example.org",
            base,
            last,
            sent_to=rng.randint(0, 30),
            received_from=rng.randint(0, 60),
            copied=rng.randint(0, 5),
        )
        if contact.sent_to + contact.received_from + contact.copied:
            people.append(contact)
    by_key = sorted(
        people,
        key=lambda c: -rank_key(c.sent_to, c.received_from, c.copied, c.two_way, c.last_seen),
    )
    for now in (base + timedelta(days=700), base + timedelta(days=1100)):
        assert [c.key for c in by_key] == [c.key for c in sorted(people, key=lambda c: -score(c, now))]
