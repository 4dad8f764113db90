"""A contact's public JSON: the API's item, the events' payload and the CLI's ``--json`` line,
written once so the three never disagree."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailport.contacts.models import StoredContact
from mailport.contacts.rank import Contact, score


def current_score(contact: StoredContact, now: datetime) -> float:
    """The contact's :func:`~mailport.contacts.rank.score` at ``now`` (0 when never seen)."""
    if contact.last_seen is None or contact.first_seen is None:
        return 0.0
    figures = Contact(
        contact.email,
        contact.first_seen,
        contact.last_seen,
        sent_to=contact.sent_to,
        received_from=contact.received_from,
        copied=contact.copied,
    )
    return score(figures, now)


def contact_json(contact: StoredContact, *, now: datetime) -> dict[str, Any]:
    """The public shape of a contact (``score`` is computed at ``now``, so it decays over time)."""
    return {
        "id": contact.id,
        "owner": contact.owner or None,
        "name": contact.name,
        "email": contact.email,
        "emails": list(contact.keys),
        "addresses_seen": list(contact.addresses),
        "names_seen": dict(contact.names.most_common()),
        "organisation": contact.organisation,
        "notes": contact.notes,
        "first_seen": contact.first_seen.isoformat() if contact.first_seen else None,
        "last_seen": contact.last_seen.isoformat() if contact.last_seen else None,
        "sent_to": contact.sent_to,
        "received_from": contact.received_from,
        "copied": contact.copied,
        "two_way": contact.two_way,
        "score": round(current_score(contact, now), 4),
        "version": contact.version,
        "created_at": contact.created_at.isoformat(),
        "updated_at": contact.updated_at.isoformat(),
    }
