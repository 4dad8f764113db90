"""Identifiers: a readable type prefix and a time-ordered random part (``mbx_01j…``).

Time-ordered ids make cursor pagination by id follow creation order and keep B-tree inserts
local. The layout is ULID's (48-bit milliseconds + 80 random bits, Crockford base32); it is
a dozen lines, so no dependency.

The two parts are encoded apart, which gives the same 26 characters as encoding the 128-bit
number (10 characters hold the 48 time bits, 16 hold the 80 random bits exactly): the time part
once per millisecond, the random part two characters (10 bits) per table lookup. Ingestion
makes two ids per message; the character-by-character loop over the whole number took ~5 µs
per id, this ~1.5 µs.

The random bits come from the operating system's CSPRNG (``os.urandom``) as before, but
:data:`POOL_BYTES` at a time: a ``getrandom`` system call per id cost ~2.2 µs under a backlog's
load (four ids per message, ~2 % of the CPU per message of ``bench/ingest_backlog.py``). The pool
is per process and per thread (a forked child, or another thread, never hands out the parent's
or a sibling's bytes: two processes must not make the same id), and each byte is used once.
"""

from __future__ import annotations

import os
import re
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)  # 10 bits -> 2 characters
_ID_SHAPE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_last_time: tuple[int, str] = (-1, "")  # the last millisecond seen, and its 10 characters
RANDOM_BYTES = 10  # 80 bits per id
POOL_BYTES = RANDOM_BYTES * 400  # one getrandom() per 400 ids


class _Pool(threading.local):
    """Random bytes from os.urandom, handed out once each, per thread."""

    def __init__(self) -> None:
        self.bytes = b""
        self.at = POOL_BYTES

    def take(self) -> int:
        at = self.at
        if at >= POOL_BYTES:
            self.bytes, at = os.urandom(POOL_BYTES), 0
        self.at = at + RANDOM_BYTES
        return int.from_bytes(self.bytes[at : at + RANDOM_BYTES])


_pool = _Pool()


def _forget_pool() -> None:
    """In a forked child: the parent's unused bytes would make the parent's next ids again."""
    global _pool
    _pool = _Pool()


os.register_at_fork(after_in_child=_forget_pool)


def new_id(prefix: str) -> str:
    global _last_time
    millis = time.time_ns() // 1_000_000
    last = _last_time  # one read: another thread may replace it meanwhile
    if millis != last[0]:
        last = _last_time = (millis, _time_chars(millis))
    r = _pool.take()  # 80 random bits
    pairs = _PAIRS
    return (
        f"{prefix}_{last[1]}{pairs[r >> 70]}{pairs[(r >> 60) & 1023]}{pairs[(r >> 50) & 1023]}"
        f"{pairs[(r >> 40) & 1023]}{pairs[(r >> 30) & 1023]}{pairs[(r >> 20) & 1023]}"
        f"{pairs[(r >> 10) & 1023]}{pairs[r & 1023]}"
    )


def _time_chars(millis: int) -> str:
    """The 48-bit millisecond count as 10 Crockford base32 characters, most significant first."""
    chars = []
    for _ in range(10):
        chars.append(_ALPHABET[millis & 31])
        millis >>= 5
    return "".join(reversed(chars))


def plausible_id(value: str) -> bool:
    """Could ``value`` be one of our ids? Anything else is answered "not found" without a query
    (so NUL bytes or stray Unicode never reach the database driver)."""
    return bool(_ID_SHAPE.match(value))
