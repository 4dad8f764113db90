"""Mailbox names in IMAP's modified UTF-7 (RFC 3501 section 5.1.3).

Reused from imapclient (BSD-3-Clause), whose ``imap_utf7`` codec is small, correct and
well tested; this module only gives it typed ``str``/``bytes`` signatures.
"""

from __future__ import annotations

from imapclient import imap_utf7


def encode(name: str) -> bytes:
    """``"Entwürfe"`` -> ``b"Entw&APw-rfe"``."""
    result: bytes = imap_utf7.encode(name)
    return result


def decode(raw: bytes) -> str:
    """``b"Entw&APw-rfe"`` -> ``"Entwürfe"`` (undecodable input is returned as latin-1 text)."""
    try:
        result: str = imap_utf7.decode(raw)
    except (ValueError, UnicodeError):
        return raw.decode("latin-1")
    return result
