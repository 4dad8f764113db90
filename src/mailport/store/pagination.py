"""Opaque cursors for keyset pagination by id.

A cursor is the last id of a page, base64url-encoded so that clients treat it as opaque;
a cursor that does not decode is the client's error (422 ``invalid_cursor``), never a 500.
"""

from __future__ import annotations

import base64
import binascii

from mailport.errors import InvalidCursorError
from mailport.store.ids import plausible_id

MAX_LIMIT = 200
DEFAULT_LIMIT = 50


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode("ascii").rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The id after which the next page starts, or None for the first page."""
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursorError("the cursor is not one this API returned", field="cursor") from exc
    version, _, last_id = raw.partition(":")
    if version != "v1" or not plausible_id(last_id):
        raise InvalidCursorError("the cursor is not one this API returned", field="cursor")
    return last_id
