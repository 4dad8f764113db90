"""Encoding command arguments: atoms, quoted strings, literals, UID sets, dates, mailbox names.

Pure functions (no I/O), so the exact bytes mailport sends are unit-tested. A value becomes an
atom when it is safe, a quoted string when it is printable ASCII, and a literal otherwise
(8-bit, CR/LF, long); the client then sends the literal as ``{n+}`` when the server offers
LITERAL+ and as a synchronising ``{n}`` otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

from mailport.imap import utf7

UIDs = str | int | Iterable[int]

_ATOM_SAFE = re.compile(rb"[A-Za-z0-9_.\-/&+:]+\Z")
_QUOTE_SAFE = re.compile(rb"[\x20-\x7e]*\Z")


class Literal:
    """A command argument sent as an IMAP literal (``{n}`` or ``{n+}``)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


Arg = bytes | Literal


def quote(value: str | bytes) -> Arg:
    """An astring argument: an atom when safe, a quoted string, or a literal for 8-bit/CRLF."""
    raw = value.encode() if isinstance(value, str) else value
    if raw and _ATOM_SAFE.match(raw) and raw.upper() != b"NIL":
        return raw
    if _QUOTE_SAFE.match(raw) and len(raw) < 1000:
        return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return Literal(raw)


def mailbox_arg(name: str) -> Arg:
    """A mailbox name in modified UTF-7 (INBOX is case-insensitive)."""
    return quote(b"INBOX" if name.upper() == "INBOX" else utf7.encode(name))


def uid_set(uids: UIDs) -> bytes:
    """``[1, 2, 3, 7]`` -> ``b"1:3,7"``; a str is passed through (``"5:*"``)."""
    if isinstance(uids, str):
        return uids.encode("ascii")
    if isinstance(uids, int):
        return str(uids).encode()
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("empty UID set")
    parts: list[str] = []
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(f"{start}:{prev}" if start != prev else str(start))
        start = prev = uid
    parts.append(f"{start}:{prev}" if start != prev else str(start))
    return ",".join(parts).encode()


def imap_date(value: datetime) -> bytes:
    """An APPEND date-time in UTC: ``"01-Mar-2024 12:00:00 +0000"``."""
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    utc = value.astimezone(UTC)
    return f'"{utc.day:02d}-{months[utc.month - 1]}-{utc.year} {utc:%H:%M:%S} +0000"'.encode()
