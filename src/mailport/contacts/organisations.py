"""The organisation of an address: its domain, unless the domain is a free-mail provider's
(``gmail.com``, ``gmx.de``), where it says nothing about who the person works for.

The free-mail domains are the consumer providers' domains of mailport's provider database
(:mod:`mailport.detect`, ISPDB and provider-db, MPL-2.0), so the list grows with it.
"""

from __future__ import annotations

import functools

from mailport.contacts.addresses import domain_of


@functools.cache
def free_mail_domains() -> frozenset[str]:
    """Every domain of a provider in mailport's provider database."""
    from mailport.detect.database import load_generated

    return frozenset(domain.lower() for provider in load_generated() for domain in provider.domains)


def organisation_of(key: str) -> str | None:
    """The organisation domain of a canonical address, or None for a free-mail address."""
    domain = domain_of(key)
    if not domain or domain in free_mail_domains():
        return None
    return domain
