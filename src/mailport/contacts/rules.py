"""Which addresses of a message count as contacts, and why the others do not.

A harvest that keeps every address is a dump of no-reply senders and mailing lists; issue 18
asks for useful contacts and for every exclusion to be visible, so each one carries a stable
:data:`Reason` code that the contact history (and the API, later) shows as is.

Which roles count (:func:`counted_roles`), by policy:

- ``sent_and_received`` (the default): received mail gives From, Reply-To, To and Cc; sent mail
  gives every recipient (To, Cc, Bcc); the sender of sent mail is the user and is not harvested;
- ``sent_only``: only the recipients of sent mail (people the user wrote to);
- ``off``: nothing.

"Received mail addressed to the user" is the caller's choice of folders (the inbox and the
user's own folders, not Junk or Trash); these rules see one message at a time.

Exclusions (:func:`exclude`), the first that applies wins:

1. per address: ``own_address``, ``own_alias`` (compared provider-folded, as the provider
   delivers ``j.doe+x@gmail.com`` to ``jdoe@gmail.com``), ``blocked_address``,
   ``blocked_domain`` (the domain and its subdomains), ``own_domain`` (only when the mailbox
   asks for it), ``bounce_sender`` (a MAILER-DAEMON / postmaster local part) and ``no_reply``
   (``noreply``, ``no-reply``, ``do_not_reply``, ``no.response`` … as a word of the local part);
2. per message (:func:`message_reason`, applied to every address of the message):
   ``bounce_sender`` (a mail system in From/Sender, an empty Return-Path without auto-reply
   markers, or a ``multipart/report`` / ``message/delivery-status`` body), ``auto_submitted``
   (RFC 3834 ``Auto-Submitted`` other than ``no``, ``X-Autoreply``, ``X-Autorespond``,
   ``Precedence: auto_reply``), ``mailing_list`` (``List-Id``, or ``List-Unsubscribe`` together
   with ``Precedence: bulk|list|junk``) and ``bulk`` (``Precedence: bulk|list|junk`` alone).

The bounce and auto-reply tests are the ones bounce detection uses
(:mod:`mailport.messages.bounce_formats`), so the two features never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from mailport.contacts.addresses import canonical, domain_of, fold
from mailport.messages import bounce_formats

Direction = Literal["received", "sent"]
Policy = Literal["sent_and_received", "sent_only", "off"]
Role = Literal["from", "reply_to", "to", "cc", "bcc"]
Reason = Literal[
    "own_address",
    "own_alias",
    "own_domain",
    "no_reply",
    "mailing_list",
    "bulk",
    "auto_submitted",
    "bounce_sender",
    "blocked_address",
    "blocked_domain",
]

RECEIVED_ROLES: tuple[Role, ...] = ("from", "reply_to", "to", "cc")
SENT_ROLES: tuple[Role, ...] = ("to", "cc", "bcc")
# The header field each role reads.
ROLE_FIELDS: dict[Role, str] = {"from": "from", "reply_to": "reply-to", "to": "to", "cc": "cc", "bcc": "bcc"}
# Every field the rules and the roles read: a harvest splits out only these.
FIELDS = frozenset(
    {
        *ROLE_FIELDS.values(),
        "sender",
        "return-path",
        "content-type",
        "list-id",
        "list-unsubscribe",
        "precedence",
        "auto-submitted",
        *bounce_formats.AUTO_REPLY_HEADERS,
    }
)

_NO_REPLY = re.compile(r"(?:^|[._+-])(?:no[._-]?reply|do[._-]?not[._-]?reply|no[._-]?response)(?:$|[._+-])")
_SYSTEM_LOCALS = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon")
_BULK = frozenset({"bulk", "list", "junk"})
_REPORT_TYPES = ("multipart/report", "message/delivery-status")


def _keys(addresses: Iterable[str]) -> frozenset[str]:
    out = set()
    for address in addresses:
        key = canonical(address)
        if key is not None:
            out.add(fold(key))
    return frozenset(out)


def _domains(domains: Iterable[str]) -> frozenset[str]:
    out = set()
    for domain in domains:
        key = canonical(f"x@{domain.strip().lstrip('@')}")
        if key is not None:
            out.add(domain_of(key))
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class Identity:
    """The mailbox's own side: its addresses, aliases and domains, folded for comparison.

    ``exclude_own_domain`` leaves out colleagues (everyone at the user's domains); off by default.
    Build it with :meth:`of`, which canonicalizes what it is given and drops what is invalid.
    """

    addresses: frozenset[str] = frozenset()
    aliases: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    exclude_own_domain: bool = False

    @classmethod
    def of(
        cls,
        addresses: Iterable[str] = (),
        *,
        aliases: Iterable[str] = (),
        domains: Iterable[str] = (),
        exclude_own_domain: bool = False,
    ) -> Identity:
        return cls(_keys(addresses), _keys(aliases), _domains(domains), exclude_own_domain)


@dataclass(frozen=True, slots=True)
class BlockList:
    """A tenant's block list: addresses (compared folded) and domains (with their subdomains)."""

    addresses: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()

    @classmethod
    def of(cls, addresses: Iterable[str] = (), *, domains: Iterable[str] = ()) -> BlockList:
        return cls(_keys(addresses), _domains(domains))


def counted_roles(direction: Direction, policy: Policy) -> tuple[Role, ...]:
    """The roles whose addresses a message of this direction contributes under ``policy``."""
    if policy == "off" or (policy == "sent_only" and direction == "received"):
        return ()
    return SENT_ROLES if direction == "sent" else RECEIVED_ROLES


def _in_domains(domain: str, domains: frozenset[str]) -> bool:
    if not domains:
        return False
    if domain in domains:
        return True
    parts = domain.split(".")
    return any(".".join(parts[i:]) in domains for i in range(1, len(parts) - 1))


def address_reason(key: str, identity: Identity, blocks: BlockList) -> Reason | None:
    """Why the canonical address ``key`` is never a contact of this mailbox, or None."""
    folded = fold(key)
    if folded in identity.addresses:
        return "own_address"
    if folded in identity.aliases:
        return "own_alias"
    if folded in blocks.addresses:
        return "blocked_address"
    local, _, domain = key.rpartition("@")
    if _in_domains(domain, blocks.domains):
        return "blocked_domain"
    if identity.exclude_own_domain and _in_domains(domain, identity.domains):
        return "own_domain"
    if local.startswith(_SYSTEM_LOCALS):
        return "bounce_sender"
    if _NO_REPLY.search(local):
        return "no_reply"
    return None


def message_reason(fields: Mapping[str, str]) -> Reason | None:
    """Why no address of this message is a contact, or None.

    ``fields`` maps lower-case field names to their first value (:data:`FIELDS` is enough).
    """
    content_type = fields.get("content-type", "").lower()
    if content_type.startswith(_REPORT_TYPES) or bounce_formats.from_mail_system(fields):
        return "bounce_sender"
    if bounce_formats.is_auto_reply(fields):
        return "auto_submitted"
    precedence = fields.get("precedence", "").strip().lower() in _BULK
    if "list-id" in fields or (precedence and "list-unsubscribe" in fields):
        return "mailing_list"
    if precedence:
        return "bulk"
    return None


def exclude(key: str, message: Reason | None, identity: Identity, blocks: BlockList) -> Reason | None:
    """The reason an address of a message is left out: its own reason first, then the message's."""
    return address_reason(key, identity, blocks) or message


REASONS: Mapping[Reason, str] = {
    "own_address": "the mailbox's own address",
    "own_alias": "one of the mailbox's aliases",
    "own_domain": "an address at the mailbox's own domain",
    "no_reply": "a no-reply address",
    "mailing_list": "mail from a mailing list",
    "bulk": "bulk mail (Precedence)",
    "auto_submitted": "an automatic reply (RFC 3834)",
    "bounce_sender": "a bounce or its mail system sender",
    "blocked_address": "on the tenant's block list",
    "blocked_domain": "a domain on the tenant's block list",
}
"""A short English description of each reason, for histories and docs."""
