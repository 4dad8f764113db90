"""The selected mailbox's message count, as the server reported it, and how many messages
arrived since a given moment.

Why: when new mail wakes an idling watcher, knowing that at most a few messages arrived lets
the connector fetch ``UID FETCH n:*`` directly instead of a ``UID SEARCH`` first (one round
trip less on every wake-up, :meth:`mailport.connectors.imap.ImapConnector.fetch_since`).

The count follows RFC 3501 7.3.1 / 7.4.1 (RFC 9051 7.4.1 / 7.5.1): ``* n EXISTS`` gives the
count and may only grow it; each ``* n EXPUNGE`` and each UID of a ``VANISHED`` without
``(EARLIER)`` (RFC 7162 3.2.10) lowers it by one; ``VANISHED (EARLIER)`` does not change it.
A growth of the count is that many arrivals. Expunges of messages the session was never
told about can only make the arrivals seem more, never fewer. What the rules forbid (an
EXISTS that shrinks the count, more expunges than messages) means the server's counts cannot
be trusted: the ``generation`` then changes, like at every SELECT, and a mark taken before
no longer answers (callers fall back to searching).

Fed by :class:`~mailport.imap.protocol.ImapProtocol` with every such response, whether a
command collected it or not; pure otherwise (tested without a server).
"""

from __future__ import annotations

from typing import NamedTuple


class CountMark(NamedTuple):
    """A moment of one connection's count: which counter, its generation, its arrivals."""

    counter: MessageCount
    generation: int
    arrived: int


class MessageCount:
    """The count of the selected mailbox on one connection (``None`` until known)."""

    __slots__ = ("exists", "arrived", "generation")

    def __init__(self) -> None:
        self.exists: int | None = None
        self.arrived = 0  # messages the count grew by, ever (only differences mean anything)
        self.generation = 0

    def reset(self) -> None:
        """A mailbox is (re)selected: its first EXISTS sets the count, and is no arrival."""
        self.exists = None
        self.generation += 1

    def on_exists(self, number: int) -> None:
        known = self.exists
        if known is not None and number < known:
            self.generation += 1  # shrank without EXPUNGE: RFC 3501 7.3.1 forbids it
        elif known is not None:
            self.arrived += number - known
        self.exists = number

    def on_expunged(self, how_many: int = 1) -> None:
        known = self.exists
        if known is None or how_many > known:
            self.generation += 1  # expunged more than there were: the count is lost
            self.exists = None
        else:
            self.exists = known - how_many

    def mark(self) -> CountMark:
        return CountMark(self, self.generation, self.arrived)

    def arrived_since(self, mark: CountMark) -> int | None:
        """Messages that arrived after ``mark`` (an upper bound), or None when unknown: another
        connection's mark, a SELECT since, or counts that broke the rules."""
        if mark.counter is not self or mark.generation != self.generation or self.exists is None:
            return None
        return self.arrived - mark.arrived
