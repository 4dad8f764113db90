"""The group rule language (mailport.contacts.group_rules) and the organisation of an address."""

from __future__ import annotations

import pytest

from mailport.contacts.group_rules import Facts, Rule
from mailport.contacts.organisations import organisation_of


def test_a_rule_is_parsed_normalized_and_refused_with_a_reason() -> None:
    rule = Rule.parse({"domains": ["ACME.com", "Bücher.example"], "two_way": True, "min_messages": 3})
    assert rule.to_json() == {
        "domains": ["acme.com", "xn--bcher-kva.example"],
        "two_way": True,
        "min_messages": 3,
    }
    assert Rule.parse({"address_contains": " Sales "}).address_contains == "sales"
    refused = {
        "unknown rule condition 'domain'": {"domain": ["acme.com"]},
        "at least one condition": {},
        "is not a domain": {"domains": ["acme .com"]},
        "list of 1 to 100 domains": {"domains": []},
        "two_way: true or false": {"two_way": "yes"},
        "min_messages: a whole number": {"min_messages": True},
        "address_contains: control characters": {"address_contains": "a\u2028b"},
        "organisation: 7 is not a domain": {"organisation": 7},
    }
    for reason, data in refused.items():
        with pytest.raises(ValueError, match=reason):
            Rule.parse(data)
    with pytest.raises(ValueError, match="JSON object"):
        Rule.parse(["acme.com"])


def test_organisations_leave_free_mail_out_and_use_the_registrable_domain() -> None:
    assert organisation_of("alice@eng.acme.co.uk") == "acme.co.uk"
    assert organisation_of("bob@gmail.com") is None
    assert organisation_of("carol@mail.yahoo.co.uk") is None  # a subdomain of free mail
    # hosted by Google, so in the provider database, but organisations all the same
    assert organisation_of("dan@google.com") == "google.com"
    assert organisation_of("eve@nyu.edu") == "nyu.edu"


def test_every_condition_given_must_hold() -> None:
    alice = Facts("acme.com", True, 4, ("alice@eng.acme.com", "a.sales@acme.com"))
    assert Rule(domains=("acme.com",)).matches(alice)  # a subdomain counts
    assert not Rule(domains=("cme.com",)).matches(alice)  # a suffix that is no subdomain does not
    assert Rule(address_contains="sales", two_way=True, min_messages=4).matches(alice)
    assert not Rule(address_contains="sales", min_messages=5).matches(alice)
    assert not Rule(two_way=False).matches(alice)
    assert Rule(organisation="acme.com").matches(alice)
    assert not Rule(organisation="acme.com").matches(Facts(None, True, 4, ("alice@acme.com",)))
