"""Identifiers: a readable type prefix and a time-ordered random part (``mbx_01j…``).

Time-ordered ids make cursor pagination by id follow creation order and keep B-tree inserts
local. The layout is ULID's (48-bit milliseconds + 80 random bits, Crockford base32); it is
a dozen lines, so no dependency.
"""

from __future__ import annotations

import re
import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_ID_SHAPE = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def new_id(prefix: str) -> str:
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def plausible_id(value: str) -> bool:
    """Could ``value`` be one of our ids? Anything else is answered "not found" without a query
    (so NUL bytes or stray Unicode never reach the database driver)."""
    return bool(_ID_SHAPE.match(value))
