"""Header blocks in RFC 5322 form from what an API gives instead of the header itself.

The Gmail API (``format=metadata``) and Microsoft Graph (``internetMessageHeaders``) give header
fields as name/value pairs; the contact harvest reads a header block
(:class:`~mailport.connectors.base.HeaderBlock`), so the pairs are written back as one, keeping
only the fields asked for. Values are unfolded (a line break inside a value would end the field
early) and written as UTF-8, which the header splitter reads back as it reads 8-bit mail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from mailport.messages import headers as hdr

_BLANKS = " \t"
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_BREAK = re.compile(r"\r?\n|\r")


def wanted(fields: Sequence[str]) -> frozenset[str] | None:
    """The lower-cased field names, or None for "every field" (``fields`` empty)."""
    return frozenset(f.lower() for f in fields) or None


def render(pairs: Iterable[tuple[str, str]], fields: frozenset[str] | None) -> bytes:
    """``[("From", "a@b"), …]`` -> ``b"From: a@b\\r\\n…"``, the fields in ``fields`` only (None: all)."""
    lines = []
    for name, value in pairs:
        if fields is None or name.lower() in fields:
            lines.append(f"{name}: {_unfold(value)}\r\n")
    return "".join(lines).encode("utf-8", "surrogateescape")


def select(block: bytes, fields: frozenset[str] | None) -> bytes:
    """The fields of a raw header block (or a whole message) that are in ``fields``, as IMAP's
    ``HEADER.FIELDS`` gives them."""
    head = block[: hdr.header_end(block, hdr.message_start(block), len(block))[0]]
    return render(hdr.parse_block(head), fields) if fields is not None else head


def _unfold(value: str) -> str:
    """RFC 5322 unfolding; a stray line break (not before a blank) becomes a space."""
    return _BREAK.sub(" ", _FOLD.sub("", value.strip(_BLANKS)))
