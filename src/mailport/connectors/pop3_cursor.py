"""The POP3 connector's cursor position: which unique ids (UIDL) were ingested, bounded.

POP3 has no "after this id": a maildrop is a list of messages, each with a unique id that
stays the same across sessions (RFC 1939 §7). So the position is the *set* of ids already
ingested that the server still lists; an id the server no longer lists is forgotten at the
next save, so the set never holds more than the maildrop does.

Bounded memory: at most :data:`MAX_REMEMBERED` ids are kept (the newest, in the server's
order). A cursor that had to drop older ids says so (``capped``); then every message the
server lists *before* the oldest remembered id still present counts as ingested (POP3 servers
list a maildrop oldest first; where one does not, a message beyond the cap could be missed —
never delivered twice: the event's idempotency key still stops a duplicate). 20,000 ids is
far beyond the mail a POP3 account keeps on the server in practice, and a full cursor of
Dovecot-style ids (16 hex digits) is ~63 KB in the cursor row (measured: zlib
gets each id to ~3 bytes; longer random ids compress less).

Encoding: ``p1:`` (``p1c:`` when capped) and the base64url of the zlib-compressed ids, one a
line, in the server's order.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mailport.errors import InvalidCursorError

MAX_REMEMBERED = 20_000
_FULL, _CAPPED = "p1:", "p1c:"


@dataclass(frozen=True, slots=True)
class Remembered:
    """The ingested ids (in the server's order) and whether older ones were dropped."""

    ids: tuple[str, ...] = ()
    capped: bool = False

    def encode(self) -> str:
        packed = zlib.compress("\n".join(self.ids).encode("ascii"), 9)
        return (_CAPPED if self.capped else _FULL) + base64.urlsafe_b64encode(packed).decode().rstrip("=")

    @classmethod
    def decode(cls, position: str) -> Remembered:
        """The inverse of :meth:`encode`; ``""`` (never saved) is the empty set."""
        if not position:
            return cls()
        capped = position.startswith(_CAPPED)
        body = position.removeprefix(_CAPPED if capped else _FULL)
        if body == position:
            raise InvalidCursorError(f"not a POP3 cursor position: {position[:40]!r}")
        try:
            text = zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))).decode("ascii")
        except (ValueError, binascii.Error, zlib.error, UnicodeDecodeError) as exc:
            raise InvalidCursorError(f"not a POP3 cursor position: {position[:40]!r}") from exc
        return cls(tuple(text.split("\n")) if text else (), capped)

    def seen(self, listed: Sequence[str]) -> set[str]:
        """The ids of ``listed`` (the server's listing, in its order) that count as ingested."""
        known = set(self.ids)
        seen = {uid for uid in listed if uid in known}
        if self.capped and seen:
            for uid in listed:  # before the oldest remembered id still there: ingested long ago
                if uid in known:
                    break
                seen.add(uid)
        return seen

    def after(
        self, listed: Sequence[str], fetched: Iterable[str], *, limit: int = MAX_REMEMBERED
    ) -> Remembered:
        """What to remember once ``fetched`` are ingested: every listed id that counts as
        ingested, in the server's order, capped at ``limit`` (the newest kept)."""
        seen = self.seen(listed) | set(fetched)
        ids = [uid for uid in listed if uid in seen]
        capped = self.capped and bool(self.seen(listed) - set(self.ids))
        if len(ids) > limit:
            ids, capped = ids[-limit:], True
        return Remembered(tuple(ids), capped)
