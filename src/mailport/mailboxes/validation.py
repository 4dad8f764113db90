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

from mailport.validation import check_text, clean_line

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
AFTER_PROCESSING_HELP = "one of none, mark_read, delete, move:<folder>"


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
    value = clean_line(value)
    if not value:
        raise ValueError("a folder name is required")
    return value


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
