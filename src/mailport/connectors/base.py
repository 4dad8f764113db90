"""The connector interface: what a watcher needs from any mail source, and nothing more.

IMAP implements it now; a Gmail API or Microsoft Graph connector implements the same methods
later (their history ids / delta links fit :class:`Cursor`'s ``uidvalidity`` + ``last_uid`` +
``modseq`` as opaque numbers, or a subclass adds a token). The shared flow (cursor, pipeline,
backoff, health) lives once in :mod:`mailport.sync`; connectors only translate.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class FolderState:
    """What opening a folder tells us: its identity epoch and where new UIDs start."""

    folder: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int | None = None
    exists: int = 0


@dataclass(frozen=True, slots=True)
class Cursor:
    """How far a mailbox's folder has been ingested."""

    folder: str
    uidvalidity: int
    last_uid: int
    highestmodseq: int | None = None


@dataclass(slots=True)
class RemoteMessage:
    """One fetched message. ``raw`` is the whole source, or None when it was over the size
    limit (then ``headers`` holds the header block and ``oversized`` is True)."""

    uid: int
    size: int
    flags: tuple[str, ...] = ()
    internaldate: datetime | None = None
    raw: bytes | None = None
    headers: bytes | None = None
    oversized: bool = False


class ChangeKind(enum.StrEnum):
    NEW_MAIL = "new_mail"  # something may have arrived: fetch since the cursor
    EXPUNGED = "expunged"
    FLAGS = "flags"
    TICK = "tick"  # nothing happened within the interval (renewal, liveness, periodic catch-up)


@dataclass(frozen=True, slots=True)
class Change:
    kind: ChangeKind
    at: float  # loop.time() when the connector learnt of it (for latency figures)


@dataclass(frozen=True, slots=True)
class ConnectorHealth:
    connected: bool
    push: bool  # IDLE (or a push API) rather than polling
    last_activity: datetime | None = None
    details: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Connector(Protocol):
    """A connection to one mailbox. Methods raise :class:`~mailport.errors.ProviderError`
    subclasses (authentication failures as :class:`~mailport.errors.AuthenticationError`)."""

    @property
    def is_connected(self) -> bool: ...

    @property
    def supports_push(self) -> bool: ...

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def open_folder(self, folder: str) -> FolderState: ...

    def fetch_since(self, cursor: Cursor, *, chunk: int = 200) -> AsyncIterator[list[RemoteMessage]]:
        """Every message with UID above ``cursor.last_uid``, in UID order, chunk by chunk —
        regardless of ``\\Seen`` (never select by flags)."""
        ...

    async def fetch_uids(self, uids: Sequence[int]) -> list[RemoteMessage]: ...

    async def list_uids(self, since_uid: int = 1) -> list[int]: ...

    async def fetch_unread(self) -> list[RemoteMessage]: ...

    async def mark_read(self, uids: Sequence[int]) -> None: ...

    async def move(self, uids: Sequence[int], folder: str) -> None: ...

    async def delete(self, uids: Sequence[int]) -> None: ...

    def watch(self, *, interval: float) -> AsyncIterator[Change]:
        """Changes as they happen (push), or a TICK every ``interval`` seconds (poll); also a
        TICK at every renewal so the caller can catch up and apply pending work."""
        ...

    def wake(self) -> None:
        """Make :meth:`watch` yield a TICK now (pending actions, shutdown)."""
        ...

    async def health(self) -> ConnectorHealth: ...
