"""Request bodies for mailbox tests."""

from __future__ import annotations

import copy
import uuid
from typing import Any


def mailbox_body(**overrides: Any) -> dict[str, Any]:
    """A complete, valid POST /v1/mailboxes body with a unique password."""
    body: dict[str, Any] = {
        "email": f"booking-{uuid.uuid4().hex[:6]}@example.com",
        "label": "Bookings",
        "purpose": "booking",
        "auth_method": "password",
        "password": f"pw-{uuid.uuid4().hex}",
        "imap": {"host": "imap.example.com", "port": 993, "security": "ssl", "username": "booking"},
        "smtp": {"host": "smtp.example.com", "port": 587, "security": "starttls", "username": "booking-out"},
        "settings": {
            "from_name": "Acme Bookings",
            "check_interval": 120,
            "folder": "INBOX",
            "after_processing": "none",
        },
    }
    body.update(overrides)
    return copy.deepcopy(body)


def with_path(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``body`` with ``value`` at a dotted ``path`` (a value of ``...`` deletes the key)."""
    result = copy.deepcopy(body)
    target = result
    *parents, last = path.split(".")
    for part in parents:
        target = target[part]
    if value is ...:
        target.pop(last, None)
    else:
        target[last] = value
    return result
