"""The rule language of contact groups: a small JSON object whose conditions must all hold,
parsed with a reason a person can act on, and decided on a contact's :class:`Facts`.

==================== ==================================================================
``domains``          ``["acme.com"]``: an address of the contact is at one of these
                     domains or a subdomain (1-100 domains)
``organisation``     ``"acme.com"``: the contact's organisation is this domain
``address_contains`` ``"sales"``: an address of the contact contains this text
``two_way``          ``true`` / ``false``: the contact wrote and was written to (or not)
``min_messages``     ``3``: at least this many messages with the contact (sent to,
                     received from and copied, added up)
==================== ==================================================================

No condition on time ("seen within 30 days"): membership is stored, and a stored fact that turns
false with the clock alone would need a sweeper to stay true. Rules are decided here, in Python,
on facts read for a whole batch at once (:func:`mailport.contacts.groups.refresh` says why not
in SQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mailport.contacts.addresses import domain_of, normalize_domain
from mailport.validation import clean_line

RULE_KEYS = ("domains", "organisation", "address_contains", "two_way", "min_messages")
MAX_RULE_DOMAINS = 100
MAX_CONTAINS = 100
MAX_MESSAGES = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Rule:
    """A group's membership rule (see the module docstring); every condition given must hold."""

    domains: tuple[str, ...] = ()
    organisation: str | None = None
    address_contains: str | None = None
    two_way: bool | None = None
    min_messages: int | None = None

    @classmethod
    def parse(cls, data: Any) -> Rule:
        """A rule from a client's JSON; ``ValueError`` says what is wrong, for a person."""
        if not isinstance(data, dict):
            raise ValueError('a rule is a JSON object such as {"domains": ["acme.com"]}')
        unknown = sorted(set(data) - set(RULE_KEYS))
        if unknown:
            raise ValueError(
                f"unknown rule condition {unknown[0]!r}; the conditions are {', '.join(RULE_KEYS)}"
            )
        if not data:
            raise ValueError(
                f"a rule needs at least one condition ({', '.join(RULE_KEYS)}); "
                "send null for a group filled by hand only"
            )
        return cls(
            domains=_domains(data["domains"]) if "domains" in data else (),
            organisation=_domain(data["organisation"], "organisation") if "organisation" in data else None,
            address_contains=_contains(data["address_contains"]) if "address_contains" in data else None,
            two_way=_boolean(data["two_way"]) if "two_way" in data else None,
            min_messages=_count(data["min_messages"]) if "min_messages" in data else None,
        )

    def to_json(self) -> dict[str, Any]:
        """The conditions given, as a client wrote them (normalized)."""
        out: dict[str, Any] = {}
        if self.domains:
            out["domains"] = list(self.domains)
        if self.organisation is not None:
            out["organisation"] = self.organisation
        if self.address_contains is not None:
            out["address_contains"] = self.address_contains
        if self.two_way is not None:
            out["two_way"] = self.two_way
        if self.min_messages is not None:
            out["min_messages"] = self.min_messages
        return out

    @property
    def reads_keys(self) -> bool:
        return bool(self.domains) or self.address_contains is not None

    def matches(self, facts: Facts) -> bool:
        """Does a contact with these ``facts`` meet every condition?"""
        if self.domains and not any(_at(key, self.domains) for key in facts.keys):
            return False
        if self.address_contains is not None and not any(self.address_contains in k for k in facts.keys):
            return False
        if self.organisation is not None and facts.organisation != self.organisation:
            return False
        if self.two_way is not None and facts.two_way != self.two_way:
            return False
        return self.min_messages is None or facts.messages >= self.min_messages


@dataclass(frozen=True, slots=True)
class Facts:
    """What a rule looks at, of one contact: read for a whole batch at once (:func:`refresh`)."""

    organisation: str | None
    two_way: bool
    messages: int  # sent to + received from + copied
    keys: tuple[str, ...] = ()


def _at(key: str, domains: Sequence[str]) -> bool:
    """Is the canonical address ``key`` at one of ``domains`` or a subdomain?"""
    domain = domain_of(key)
    return any(domain == d or domain.endswith(f".{d}") for d in domains)


def _domain(value: Any, name: str) -> str:
    domain = normalize_domain(value.strip()) if isinstance(value, str) and len(value) <= 253 else None
    if domain is None:
        raise ValueError(f"{name}: {value!r} is not a domain such as acme.com")
    return domain


def _domains(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_RULE_DOMAINS:
        raise ValueError(f'domains: a list of 1 to {MAX_RULE_DOMAINS} domains such as ["acme.com"]')
    return tuple(dict.fromkeys(_domain(item, "domains") for item in value))


def _contains(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_CONTAINS:
        raise ValueError(f"address_contains: a text of 1 to {MAX_CONTAINS} characters")
    try:
        return clean_line(value).lower()
    except ValueError as exc:
        raise ValueError(f"address_contains: {exc}") from None


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("two_way: true or false")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_MESSAGES:
        raise ValueError(f"min_messages: a whole number from 1 to {MAX_MESSAGES}")
    return value
