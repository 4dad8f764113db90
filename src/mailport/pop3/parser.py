"""Pure POP3 framing and parsing (RFC 1939, RFC 2449, RFC 3206), tested on bytes.

Nothing here does I/O: the client (:mod:`mailport.pop3.client`) feeds bytes in and gets
values out, so that dot-stuffing, the ``.\\r\\n`` terminator, response codes and listings are
pinned by unit tests without a server.

* A single-line response is ``+OK text`` or ``-ERR text`` (:func:`parse_status`); RFC 2449
  lets ``-ERR`` (and ``+OK``) start with a bracketed response code: ``-ERR [IN-USE] …``.
* A multi-line response is the status line, then lines where a leading ``.`` was doubled
  ("byte-stuffed"), then a line holding a single ``.`` (:class:`MultiLineReader`). A line
  of exactly ``..`` in the data is a message line of exactly ``.``.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailport.errors import ProtocolError

CRLF = b"\r\n"
TERMINATOR = b"\r\n.\r\n"  # a CRLF ending the last data line, then the "." line
MAX_STATUS_LINE = 8 * 1024  # RFC 2449: 512 octets; some servers say more in their greeting


@dataclass(frozen=True, slots=True)
class Status:
    """One status line: ``ok``, the RFC 2449 response ``code`` (``IN-USE``, ``SYS/TEMP``,
    ``AUTH`` …, upper case; None when there is none) and the text after it."""

    ok: bool
    code: str | None
    text: str
    line: str  # the whole line as the server said it (without CRLF)

    def said(self) -> str:
        return self.line


def parse_status(line: bytes) -> Status:
    """``+OK …`` / ``-ERR …`` (the CRLF may be there or not); anything else is a
    :class:`~mailport.errors.ProtocolError` (the stream is not POP3, or desynced)."""
    line = line.removesuffix(CRLF)
    text = line.decode("utf-8", "replace")
    if line[:3] == b"+OK":
        ok, rest = True, text[3:]
    elif line[:4] == b"-ERR":
        ok, rest = False, text[4:]
    else:
        raise ProtocolError(f"not a POP3 status line: {line[:80]!r}")
    if rest and rest[0] not in " \t":
        raise ProtocolError(f"not a POP3 status line: {line[:80]!r}")
    rest = rest.strip()
    code: str | None = None
    if rest.startswith("["):
        end = rest.find("]")
        if end > 1:
            code, rest = rest[1:end].upper(), rest[end + 1 :].strip()
    return Status(ok, code, rest, text)


def is_continuation(line: bytes) -> bool:
    """A SASL server challenge (RFC 5034): ``+ <base64>`` or a bare ``+``."""
    return line[:1] == b"+" and line[1:2] in (b" ", b"\r", b"")


def challenge_data(line: bytes) -> bytes:
    """The base64 text of a ``+ …`` challenge line."""
    return line.removesuffix(CRLF)[1:].strip()


def unstuff(data: bytes) -> bytes:
    """The data of a multi-line response (everything between the status line and the
    terminating ``.`` line) with the byte-stuffing removed: every line starting with ``.``
    loses that one ``.``."""
    if data.startswith(b"."):
        data = data[1:]
    return data.replace(b"\r\n.", b"\r\n")


class MultiLineReader:
    """Finds the end of a multi-line response in bytes fed to it, keeping at most ``limit``
    bytes of data: beyond that it only counts (``overflowed``), so an oversized message is
    skipped on the wire and the session stays in step.

    ``feed`` returns the bytes after the terminator (the start of whatever follows) once the
    end was seen, else None.
    """

    __slots__ = ("_buffer", "_lead", "_dropped", "limit", "size", "overflowed", "done")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # A CRLF in front, so that a response without data ends at its first ".\r\n" and the
        # terminator is always "\r\n.\r\n"; ``_lead`` says whether it is still there.
        self._buffer = bytearray(CRLF)
        self._lead = 2
        self._dropped = 0  # data bytes thrown away after an overflow
        self.size = 0  # the data's size on the wire (stuffed), kept or not: set when done
        self.overflowed = False
        self.done = False

    def feed(self, chunk: bytes) -> bytes | None:
        start = max(0, len(self._buffer) - len(TERMINATOR) + 1)
        self._buffer += chunk
        end = self._buffer.find(TERMINATOR, start)
        if end < 0:
            if len(self._buffer) - self._lead > self.limit:
                self._spill()
            return None
        self.done = True
        rest = bytes(self._buffer[end + len(TERMINATOR) :])
        del self._buffer[end + 2 :]  # keep the CRLF ending the last data line
        kept = max(len(self._buffer) - self._lead, 0)
        self.size = self._dropped + kept
        if kept > self.limit:
            self.overflowed = True
        return rest

    def _spill(self) -> None:
        """Over the limit: keep only the tail that may hold the start of the terminator."""
        self.overflowed = True
        keep = len(TERMINATOR) - 1
        drop = len(self._buffer) - keep
        self._dropped += drop - self._lead
        self._lead = 0
        del self._buffer[:drop]

    def data(self) -> bytes | None:
        """The unstuffed data (lines with their CRLF), or None when it overflowed."""
        if self.overflowed:
            return None
        return unstuff(bytes(self._buffer[self._lead :]))


def parse_listing(data: bytes, *, what: str) -> list[tuple[int, str]]:
    """The lines of a ``UIDL`` or ``LIST`` answer: ``(message number, second field)``, in the
    server's order. A malformed line is a :class:`~mailport.errors.ProtocolError`."""
    out: list[tuple[int, str]] = []
    for line in data.split(CRLF):
        if not line:
            continue
        out.append(parse_listing_line(line, what=what))
    return out


def parse_listing_line(line: bytes, *, what: str) -> tuple[int, str]:
    """One ``n value`` line (a UIDL is 1-70 characters 0x21-0x7E, RFC 1939 §7)."""
    parts = line.strip().split()
    if len(parts) < 2 or not parts[0].isdigit():
        raise ProtocolError(f"unexpected {what} line: {line[:80]!r}")
    value = parts[1].decode("ascii", "replace")
    if what == "UIDL" and not (0 < len(value) <= 70 and all(0x21 <= ord(c) <= 0x7E for c in value)):
        raise ProtocolError(f"not a unique-id in a UIDL line: {line[:80]!r}")
    if what == "LIST" and not value.isdigit():
        raise ProtocolError(f"not a size in a LIST line: {line[:80]!r}")
    return int(parts[0]), value


def parse_capabilities(data: bytes) -> dict[str, tuple[str, ...]]:
    """``CAPA`` lines (RFC 2449): the upper-cased tag to its arguments, e.g.
    ``{"SASL": ("PLAIN", "XOAUTH2"), "STLS": (), "UIDL": ()}``."""
    caps: dict[str, tuple[str, ...]] = {}
    for line in data.split(CRLF):
        words = line.decode("utf-8", "replace").split()
        if words:
            caps[words[0].upper()] = tuple(words[1:])
    return caps
