"""Contacts harvested from mail (issue 18): who a mailbox really corresponds with.

This package holds the pure foundation: canonical addresses (:mod:`.addresses`), exclusion
rules (:mod:`.rules`), the per-message harvest of observations (:mod:`.harvest`) and the
per-address aggregate with its rank (:mod:`.rank`) and the CSV and vCard 4.0 writers
(:mod:`.export`). Storage, API, CLI and sync build on these.
"""

from mailport.contacts.addresses import canonical, display_name, fold
from mailport.contacts.export import ContactCard, csv_rows, vcard, vcards
from mailport.contacts.harvest import Observation, harvest
from mailport.contacts.rank import Contact, Contacts, score
from mailport.contacts.rules import BlockList, Direction, Identity, Policy, Reason, Role

__all__ = [
    "BlockList",
    "Contact",
    "ContactCard",
    "Contacts",
    "Direction",
    "Identity",
    "Observation",
    "Policy",
    "Reason",
    "Role",
    "canonical",
    "csv_rows",
    "display_name",
    "fold",
    "harvest",
    "score",
    "vcard",
    "vcards",
]
