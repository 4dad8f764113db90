"""Canonical addresses: the deduplication key of a contact, and its display name.

One contact per canonical address (issue 18): the local part lowercased, the domain
IDNA-normalized to its ASCII (A-label) form, so ``Bob@Exämple.de`` and ``bob@xn--exmple-cua.de``
are one key that any store and collation compares byte for byte. Lowercasing the local part is
not what RFC 5321 promises, but it is what every large provider does and what users expect.

Provider-aware folding (optional, :func:`fold`) goes one step further for the few providers that
document it, so ``j.doe+news@googlemail.com`` and ``jdoe@gmail.com`` become one contact:

- Gmail / Googlemail: dots in the local part are ignored, ``+tag`` is a subaddress, and
  ``googlemail.com`` is ``gmail.com``;
- ``+tag`` subaddressing only: Outlook.com (``outlook.com``, ``hotmail.com``, ``live.com``),
  iCloud (``icloud.com``, ``me.com``, ``mac.com``), Fastmail (``fastmail.com``, ``fastmail.fm``)
  and Proton (``proton.me``, ``protonmail.com``, ``pm.me``).

The list is short on purpose: folding another domain's ``+`` could merge two real people
(some servers use ``+`` or ``-`` as ordinary characters). Invalid addresses answer ``None``
(never an exception): a harvest skips them.

Hand-written because no library fits: ``email-validator`` does deliverability checks and raises;
the stdlib has no canonical form. The display name reuses mailport's own RFC 2047 decoder
(:func:`mailport.messages.headers.decode_words`).
"""

from __future__ import annotations

import functools
import re

import idna

from mailport.messages.headers import decode_words

# RFC 5321 §4.5.3.1: 64 octets of local part, 254 of address (the path's 256 minus '<>').
MAX_LOCAL = 64
MAX_ADDRESS = 254
_LOCAL = re.compile(r'[^\s@<>()\[\]\\,;:"\x00-\x1f\x7f]+|"[^"\\\r\n]*"')
_ASCII_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_BLANKS = re.compile(r"\s+")

GMAIL = frozenset({"gmail.com", "googlemail.com"})
PLUS_TAG = frozenset(
    {
        *GMAIL,
        "outlook.com",
        "hotmail.com",
        "live.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "fastmail.com",
        "fastmail.fm",
        "proton.me",
        "protonmail.com",
        "pm.me",
    }
)


def canonical(address: str) -> str | None:
    """``local@domain`` lowercased with an A-label domain; None when not a usable address.

    Not usable: no ``@``, an empty or over-long part, blanks or specials in the local part, a
    domain literal (``[192.0.2.1]``), a domain without a dot (``localhost``) or that IDNA
    rejects.
    """
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or len(local) > MAX_LOCAL or _LOCAL.fullmatch(local) is None:
        return None
    ascii_domain = normalize_domain(domain)
    if ascii_domain is None:
        return None
    key = f"{local.lower()}@{ascii_domain}"
    return key if len(key) <= MAX_ADDRESS else None


@functools.lru_cache(maxsize=65_536)  # a mailbox sees few domains, over and over
def normalize_domain(domain: str) -> str | None:
    """The domain's lowercase A-label form, or None when it is not a valid host name."""
    domain = domain.rstrip(".")
    if domain.isascii():
        domain = domain.lower()
        labels = domain.split(".")
        if len(labels) < 2 or not all(_ASCII_LABEL.fullmatch(label) for label in labels):
            return None
        if "xn--" not in domain:
            return domain
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
        idna.decode(ascii_domain)  # a bogus 'xn--' label fails here
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
    return ascii_domain if "." in ascii_domain else None


def fold(key: str) -> str:
    """The provider-folded form of a canonical address (see the module docstring).

    Other domains are returned unchanged; a local part that folding would empty is kept.
    """
    local, _, domain = key.rpartition("@")
    if domain not in PLUS_TAG:
        return key
    base = local.split("+", 1)[0]
    if domain in GMAIL:
        base, domain = base.replace(".", ""), "gmail.com"
    return f"{base or local}@{domain}"


def domain_of(key: str) -> str:
    """The domain of a canonical address."""
    return key.rpartition("@")[2]


def display_name(name: str, address: str = "") -> str:
    """A display name as people read it: RFC 2047 words decoded, blanks collapsed, outer quotes
    dropped; empty when the "name" is only the address again (``"bob@x.org" <bob@x.org>``)."""
    if "=?" in name:
        name = decode_words(name)[0]
    name = _BLANKS.sub(" ", name).strip(" \"'")
    if not name or (address and name.lower() == address.lower()) or ("@" in name and " " not in name):
        return ""
    return name
