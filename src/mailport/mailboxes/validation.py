"""Pure checks for mailbox fields, used by the API schemas and the CLI alike.

Text, one-line text and email addresses follow the rules every request follows
(:mod:`mailport.validation`). Host names are IDNA-aware: ``mail.bücher.de`` is stored as its
``xn--`` form, which is what a client connects to. Each function raises ``ValueError`` with
a message fit for a person; pydantic turns that into the 422 error body.
"""

from __future__ import annotations

import ipaddress
import re

import idna

from mailport.connectors.folders import Role
from mailport.mailboxes.models import ROLE_PREFIX
from mailport.validation import check_text, clean_line

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
AFTER_PROCESSING_HELP = "one of none, mark_read, delete, move:<folder>"
# Each watched folder is one more connection (an IDLE each): Gmail allows 15 per account, and
# the command pool needs its own beside them.
MAX_WATCHED_FOLDERS = 10
ROLES = tuple(role.value for role in Role)
WATCHED_FOLDER_HELP = (
    f"a folder path (INBOX, Sent, INBOX.Sent) or a role ({', '.join(ROLE_PREFIX + r for r in ROLES)})"
)


def normalize_host(value: str) -> str:
    """An IP address, or a host name in its ASCII (IDNA) form, lower-case, no trailing dot."""
    host = check_text(value).strip().rstrip(".")
    if not host or len(host) > 253:
        raise ValueError("a host name of 1-253 characters is required")
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(literal))
    except ValueError:
        pass
    try:
        ascii_host = idna.encode(host, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(f"not a valid host name: {host!r}") from exc
    labels = ascii_host.split(".")
    if len(ascii_host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"not a valid host name: {host!r}")
    if labels[-1].isdigit():
        raise ValueError(f"not a valid host name or IP address: {host!r}")
    return ascii_host


def clean_folder(value: str) -> str:
    """A folder name as the user knows it (``Processed``, ``Archive/2024``). What the server
    calls it is resolved when it is used, through NAMESPACE (``INBOX.Processed`` on a server whose
    personal folders live under ``INBOX.``), and a missing move target is created then: the
    server is not reachable when the setting is saved. Refused here is what no server accepts."""
    value = clean_line(value)
    if not value:
        raise ValueError("a folder name is required")
    if "*" in value or "%" in value:
        raise ValueError("a folder name cannot contain * or % (they are IMAP wildcards)")
    if len(value) > 500:
        raise ValueError("a folder name has at most 500 characters")
    return value


def clean_watched_folder(value: str) -> str:
    """A watched folder: a path (``INBOX`` in any case is ``INBOX``) or ``role:<role>`` (lower
    case; the role must be one :class:`~mailport.connectors.folders.Role` names)."""
    value = clean_line(value)
    if value.lower().startswith(ROLE_PREFIX):
        role = value[len(ROLE_PREFIX) :].strip().lower()
        if role not in ROLES:
            raise ValueError(f"unknown folder role {role!r}: the roles are {', '.join(ROLES)}")
        return ROLE_PREFIX + role
    value = clean_folder(value)
    return "INBOX" if value.upper() == "INBOX" else value


def same_folder(spec: str) -> str:
    """What two specs that name one folder whatever the server share (``INBOX``, ``role:inbox``)."""
    return "INBOX" if spec == ROLE_PREFIX + Role.INBOX.value else spec


def check_watched_folders(values: list[str]) -> list[str]:
    """The list of watched folders: 1 to :data:`MAX_WATCHED_FOLDERS`, none twice."""
    if not values:
        raise ValueError("at least one folder must be watched (the first one is `folder`)")
    if len(values) > MAX_WATCHED_FOLDERS:
        raise ValueError(
            f"at most {MAX_WATCHED_FOLDERS} folders can be watched ({len(values)} given): "
            "each one keeps a connection of its own open"
        )
    seen: dict[str, str] = {}
    for spec in values:
        key = same_folder(spec)
        if key in seen:
            twice = spec if seen[key] == spec else f"{seen[key]} and {spec}"
            raise ValueError(f"a folder is listed twice: {twice}")
        seen[key] = spec
    return values


def validate_after_processing(value: str) -> str:
    value = check_text(value).strip()
    if value in ("none", "mark_read", "delete"):
        return value
    if value.startswith("move:"):
        return "move:" + clean_folder(value.removeprefix("move:"))
    raise ValueError(f"after_processing must be {AFTER_PROCESSING_HELP}")


def check_password(value: str) -> str:
    check_text(value)
    if "\x00" in value or "\r" in value or "\n" in value:
        raise ValueError("a password cannot contain NUL or line breaks")
    return value


def clean_optional_line(value: str | None) -> str | None:
    return None if value is None else clean_line(value)
