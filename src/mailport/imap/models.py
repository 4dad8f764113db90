"""Plain data the IMAP client returns: no I/O, cheap to create (slots), easy to assert on."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from mailport.servers import Security as Security  # the one enum; the client takes it


@dataclass(frozen=True, slots=True)
class TLSInfo:
    """What the TLS handshake established (for connection tests and troubleshooting)."""

    version: str | None
    cipher: str | None
    verified: bool
    subject: str | None = None
    issuer: str | None = None
    san: tuple[str, ...] = ()
    not_before: datetime | None = None
    not_after: datetime | None = None
    pinned: bool = False  # accepted because it is the pinned certificate (mailport.net.trust)
    certificate: bytes | None = None  # the peer's certificate (DER), to show or pin it


@dataclass(frozen=True, slots=True)
class Greeting:
    status: str  # OK, PREAUTH or BYE
    text: str
    capabilities: frozenset[str] | None


@dataclass(slots=True)
class SelectInfo:
    """What SELECT/EXAMINE reported about a mailbox."""

    mailbox: str
    exists: int = 0
    recent: int = 0
    uidvalidity: int | None = None
    uidnext: int | None = None
    highestmodseq: int | None = None
    flags: tuple[str, ...] = ()
    permanent_flags: tuple[str, ...] = ()
    read_only: bool = False
    vanished: list[int] = field(default_factory=list)  # QRESYNC: UIDs expunged since the given modseq
    changed: list[FetchedMessage] = field(default_factory=list)  # QRESYNC: flag changes since then


@dataclass(frozen=True, slots=True)
class Namespace:
    """One namespace of RFC 2342: mailbox names in it start with ``prefix``; levels are
    separated by ``delimiter`` (None: a flat namespace)."""

    prefix: str
    delimiter: str | None


@dataclass(frozen=True, slots=True)
class Namespaces:
    """The server's answer to NAMESPACE: the personal, other users' and shared namespaces."""

    personal: tuple[Namespace, ...] = ()
    other: tuple[Namespace, ...] = ()
    shared: tuple[Namespace, ...] = ()

    def qualify(self, name: str) -> str:
        """The full name of the personal folder ``name`` (``Processed`` -> ``INBOX.Processed``
        where the personal namespace is ``INBOX.``). Levels may be written with ``/``
        (``Archive/2024``); they get the namespace's own separator (``INBOX.Archive.2024``).
        ``INBOX`` itself, names already in a namespace, and servers with an empty personal
        prefix keep the name as given."""
        if name.upper() == "INBOX" or not self.personal:
            return name
        delimiter = self.personal[0].delimiter
        if delimiter and delimiter != "/":
            name = name.replace("/", delimiter)
        for namespace in (*self.personal, *self.other, *self.shared):
            if namespace.prefix and _in_namespace(name, namespace.prefix):
                if namespace.prefix.upper().startswith("INBOX"):  # INBOX is case-insensitive
                    return namespace.prefix + name[len(namespace.prefix) :]
                return name
        return self.personal[0].prefix + name


def _in_namespace(name: str, prefix: str) -> bool:
    if prefix.upper().startswith("INBOX"):
        return name.upper().startswith(prefix.upper())
    return name.startswith(prefix)


@dataclass(frozen=True, slots=True)
class ListEntry:
    name: str  # decoded from modified UTF-7
    delimiter: str | None
    flags: tuple[str, ...]

    @property
    def special_use(self) -> str | None:
        """``\\Sent``, ``\\Trash`` … (RFC 6154), if the server marked the mailbox."""
        for flag in self.flags:
            if flag.lower() in _SPECIAL_USE:
                return flag
        return None

    @property
    def selectable(self) -> bool:
        return not any(f.lower() in ("\\noselect", "\\nonexistent") for f in self.flags)


_SPECIAL_USE = {"\\all", "\\archive", "\\drafts", "\\flagged", "\\junk", "\\sent", "\\trash", "\\important"}


@dataclass(slots=True)
class FetchedMessage:
    """One message from UID FETCH. ``raw`` is the whole message (BODY.PEEK[]), ``headers`` the header."""

    seq: int
    uid: int | None = None
    flags: tuple[str, ...] | None = None
    internaldate: datetime | None = None
    size: int | None = None
    modseq: int | None = None
    raw: bytes | None = None
    headers: bytes | None = None
    oversize: int | None = None  # the literal exceeded max_literal_size and was skipped


@dataclass(frozen=True, slots=True)
class AppendResult:
    uidvalidity: int | None
    uid: int | None


class EventKind(enum.StrEnum):
    EXISTS = "exists"
    EXPUNGE = "expunge"
    RECENT = "recent"
    FETCH = "fetch"  # flags changed on another session
    VANISHED = "vanished"
    BYE = "bye"
    ALERT = "alert"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """An unsolicited response: something changed on the server, or it is going away."""

    kind: EventKind
    number: int | None = None  # the count (EXISTS/RECENT) or sequence number (EXPUNGE/FETCH)
    text: str = ""
    uid: int | None = None
    flags: tuple[str, ...] | None = None
    uids: tuple[int, ...] = ()  # VANISHED
