"""Search over IMAP: the neutral :class:`~mailport.connectors.mail.SearchQuery` compiled into
``UID SEARCH`` keys, run, and paged newest first.

Compiling is pure (:func:`compile_search`, tested on bytes): each criterion becomes the RFC 3501
key of the same meaning (``FROM``, ``SUBJECT``, ``TEXT``, ``HEADER``, ``SEEN``/``UNSEEN``,
``LARGER`` …), ANDed by juxtaposition. Text that is not ASCII travels as a literal after
``CHARSET UTF-8``; a server that cannot search UTF-8 (``NO [BADCHARSET]``) is a 422
``unsupported_feature`` that says so. ``native`` is raw IMAP search keys (on Gmail also
``X-GM-RAW "…"``), checked so that it cannot break the command (no CR/LF, balanced quotes and
parentheses, no literals) and appended last, so it is ANDed with the rest and an incomplete key
in it is the server's syntax error (422 ``invalid_input`` with the server's words), never another
criterion swallowed.

Two criteria are exact although IMAP cannot say them exactly:

* ``since``/``before`` are instants, while SEARCH compares dates in the server's time zone: the
  server is asked a day wider on each side and every candidate's INTERNALDATE is checked.
* ``has_attachment`` has no IMAP key: candidates are checked page by page from their
  BODYSTRUCTURE (the listing's ``has_attachments``) until the page is full, at most
  :data:`CHECK_LIMIT` candidates per request; a page may then be short and still carry a
  ``next_cursor``. Gmail answers it itself (``X-GM-RAW "has:attachment"``).

Pages are newest first (highest UID first) and continue from the listing's cursor (the folder,
its UIDVALIDITY and the UID the page stopped at, :mod:`mailport.connectors.imap_mail`): the next
page asks ``UID 1:<that UID - 1>`` with the same criteria, so mail arriving meanwhile (higher
UIDs) neither repeats nor hides a result. Results are the listing's summaries.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from mailport.connectors import imap_mail
from mailport.connectors.mail import MAX_LIMIT, MessagePage, MessageSummary, SearchQuery
from mailport.errors import (
    CommandError,
    InputError,
    UnsupportedFeatureError,
)
from mailport.imap.arguments import Arg, Literal, quote

if TYPE_CHECKING:
    from mailport.connectors.imap import ImapConnector

CHECK_LIMIT = 1000  # candidates whose attachments/dates one request may check
CHECK_PAGE = 100  # candidates checked per FETCH
NATIVE_MAX = 2000  # characters of a native query
SEARCH_TIMEOUT = 120.0

_TEMPORARY = frozenset({"UNAVAILABLE", "SERVERBUG", "INUSE", "LIMIT", "EXPUNGEISSUED"})  # RFC 5530
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_HEADER_NAME = re.compile(r"[!-9;-~]+\Z")  # RFC 5322 ftext: printable ASCII but ':'


@dataclass(frozen=True, slots=True)
class SearchProgram:
    """What a query asks the server (``keys``, after ``CHARSET charset`` when set) and what is
    checked on each candidate afterwards (the exact instants, attachments)."""

    keys: tuple[Arg, ...]
    charset: str | None = None
    since: datetime | None = None
    before: datetime | None = None
    has_attachment: bool | None = None
    native: bool = False

    @property
    def checks(self) -> bool:
        """Must candidates be checked one by one (not every key is exact on the server)?"""
        return self.since is not None or self.before is not None or self.has_attachment is not None

    def admits(self, summary: MessageSummary) -> bool:
        when = summary.received_at
        if when is not None:
            if self.since is not None and when < self.since:
                return False
            if self.before is not None and when >= self.before:
                return False
        if self.has_attachment is not None and summary.has_attachments is not None:
            return summary.has_attachments is self.has_attachment
        return True


class _Keys:
    """Search keys being written; notes whether any text needs ``CHARSET UTF-8``."""

    def __init__(self) -> None:
        self.args: list[Arg] = []
        self.utf8 = False

    def key(self, *atoms: str) -> None:
        self.args.append(" ".join(atoms).encode("ascii"))

    def text(self, field: str, value: str) -> Arg:
        if not value.strip():
            raise InputError(f"{field} must not be empty", field=field)
        try:
            value.encode("ascii")
        except UnicodeEncodeError:
            self.utf8 = True
            return Literal(value.encode("utf-8", "surrogatepass"))
        return quote(value)

    def string_key(self, name: str, field: str, value: str) -> None:
        self.args += [name.encode("ascii"), self.text(field, value)]


def compile_search(query: SearchQuery, *, gmail: bool = False) -> SearchProgram:
    """The IMAP SEARCH keys for ``query`` (every criterion ANDed); ``gmail``: the server offers
    X-GM-EXT-1, which answers ``has_attachment`` itself."""
    keys = _Keys()
    for name, field, value in (
        ("FROM", "from", query.from_),
        ("TO", "to", query.to),
        ("CC", "cc", query.cc),
        ("SUBJECT", "subject", query.subject),
        ("TEXT", "text", query.text),
        ("BODY", "body", query.body),
    ):
        if value is not None:
            keys.string_key(name, field, value)
    for header, value in query.headers.items():
        if not _HEADER_NAME.match(header):
            raise InputError(
                f"not a header name: {header[:60]!r}",
                field="headers",
                hint="A header name is printable ASCII without spaces or ':' (e.g. X-Ticket-Id).",
            )
        keys.args += [b"HEADER", quote(header), keys.text(f"headers.{header}", value)]
    if query.message_id is not None:
        keys.args += [b"HEADER", b"Message-ID", keys.text("message_id", query.message_id.strip())]
    since, before = _instant(query.since, "since"), _instant(query.before, "before")
    if since is not None and before is not None and since >= before:
        raise InputError("since must be earlier than before", field="since")
    if since is not None:  # a day wider: the server compares dates in its own time zone
        keys.key("SINCE", imap_day(since.astimezone(UTC) - timedelta(days=1)))
    if before is not None:
        keys.key("BEFORE", imap_day(before.astimezone(UTC) + timedelta(days=2)))
    for flag, wanted in (("SEEN", query.seen), ("FLAGGED", query.flagged), ("ANSWERED", query.answered)):
        if wanted is not None:
            keys.key(flag if wanted else "UN" + flag)
    for name, field, size in (("LARGER", "larger", query.larger), ("SMALLER", "smaller", query.smaller)):
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise InputError(f"{field} must be a number of bytes (0 or more)", field=field)
            keys.key(name, str(size))
    has_attachment = query.has_attachment
    if has_attachment is not None and gmail:
        keys.args += [b"X-GM-RAW" if has_attachment else b"NOT X-GM-RAW", b'"has:attachment"']
        has_attachment = None
    native = query.native is not None and bool(query.native.strip())
    if query.native is not None:
        keys.args += native_keys(query.native, keys)
    return SearchProgram(
        keys=tuple(keys.args) or (b"ALL",),
        charset="UTF-8" if keys.utf8 else None,
        since=since,
        before=before,
        has_attachment=has_attachment,
        native=native,
    )


def _instant(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InputError(f"{field} needs a time zone (e.g. 2024-03-01T00:00:00Z)", field=field)
    return value


def imap_day(value: datetime) -> str:
    """A SEARCH date: ``1-Mar-2024`` (the month in English whatever the locale)."""
    return f"{value.day}-{_MONTHS[value.month - 1]}-{value.year}"


# ------------------------------------------------------------------------------ native


def native_keys(native: str, keys: _Keys | None = None) -> list[Arg]:
    """Raw IMAP search keys as command arguments, refused when they could break the command:
    CR, LF or NUL; an unterminated quoted string; unbalanced parentheses; a literal (``{n}``).
    Quoted strings and atoms that are not ASCII become literals (and ask for ``CHARSET UTF-8``)."""
    if len(native) > NATIVE_MAX:
        raise _native_error(f"longer than {NATIVE_MAX} characters")
    if any(c in native for c in "\r\n\0"):
        raise _native_error("line breaks and NUL are not allowed")
    tokens: list[tuple[str, str]] = []  # (kind, text): "(" ")" "atom" "quoted" (unescaped)
    depth = 0
    i, n = 0, len(native)
    while i < n:
        c = native[i]
        if c in " \t":
            i += 1
        elif c == "(":
            depth += 1
            tokens.append(("(", c))
            i += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                raise _native_error("a ')' closes nothing")
            tokens.append((")", c))
            i += 1
        elif c == '"':
            value, i = _quoted(native, i)
            tokens.append(("quoted", value))
        elif c in "{}":
            raise _native_error("literals ({n}) are not accepted; write the text in double quotes")
        else:
            start = i
            while i < n and native[i] not in ' \t()"{}':
                i += 1
            tokens.append(("atom", native[start:i]))
    if depth:
        raise _native_error("a '(' is not closed")
    if not tokens:
        raise _native_error("it is empty")
    args: list[Arg] = []
    chunk = ""
    previous = "("
    for kind, text in tokens:
        if kind not in ("(", ")") and not text.isascii():
            if keys is not None:
                keys.utf8 = True
            if chunk:
                args.append(chunk.encode("ascii"))
                chunk = ""
            args.append(Literal(text.encode("utf-8", "surrogatepass")))
            previous = "literal"
            continue
        rendered = _render(kind, text)
        space = previous not in ("(", "literal") and kind != ")"
        chunk += (" " if space and chunk else "") + rendered
        previous = kind
    if chunk:
        args.append(chunk.encode("ascii"))
    return args


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The unescaped value of the quoted string at ``start`` and the index after it."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 >= len(text) or text[i + 1] not in '\\"':
                raise _native_error('in a quoted string only \\\\ and \\" may follow a backslash')
            out.append(text[i + 1])
            i += 2
        elif c == '"':
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise _native_error("a quoted string is not closed")


def _render(kind: str, text: str) -> str:
    if kind == "quoted":
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _native_error(why: str) -> InputError:
    return InputError(
        f"native: not usable as IMAP search keys: {why}",
        field="native",
        hint="Write IMAP SEARCH keys as in RFC 3501 (e.g. OR FROM alice FROM bob; on Gmail "
        'X-GM-RAW "has:attachment").',
    )


# ------------------------------------------------------------------------------ running


def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    return limit


async def run_search(
    connector: ImapConnector,
    folder: str,
    keys: Sequence[Arg],
    *,
    charset: str | None = None,
    native: bool = False,
) -> list[int]:
    """``UID SEARCH`` in the selected folder with the server's refusals translated: a charset
    it cannot search (422 ``unsupported_feature``), a key it does not know (422, the server's
    words; ``invalid_input`` when it is ``native`` the server cannot parse)."""
    client = connector._require()
    try:
        return await client.uid_search(keys, charset=charset, timeout=SEARCH_TIMEOUT)
    except CommandError as exc:
        said = exc.server_said or str(exc)
        if exc.details.get("response_code") == "BADCHARSET":
            raise UnsupportedFeatureError(
                f"{folder}: the server cannot search text that is not ASCII ({said})",
                hint="Search this server with ASCII text only (e.g. part of an address or a word "
                "without accents).",
            ) from exc
        if exc.details.get("response_code") in _TEMPORARY:
            raise  # the server's trouble, not the query's: 503, retry later
        if exc.details.get("status") == "BAD":
            if native:
                raise InputError(
                    f"native: the server refused the search keys: {said}",
                    field="native",
                    hint="Check the IMAP SEARCH syntax (RFC 3501 section 6.4.4) and the server's extensions.",
                ) from exc
        raise UnsupportedFeatureError(
            f"{folder}: the server cannot search this way: {said}",
            hint="Leave out the criterion this server does not support.",
            server_said=exc.server_said,
        ) from exc


async def open_folder(connector: ImapConnector, folder: str) -> tuple[int, int]:
    """``folder`` selected read-only (searching changes nothing) unless it is already, then
    brought up to date (a NOOP): its UIDVALIDITY and how many messages it held when selected
    (a selection kept from an earlier call does not count what arrived since, so this is a
    size hint, never a reason to skip the search: a search right after an APPEND on the same
    pooled connection must find that message, as the Sent copy's "never twice" check needs)."""
    info = await imap_mail.select(connector, folder, fresh=True)
    return info.uidvalidity or 0, info.exists


async def search_messages(connector: ImapConnector, query: SearchQuery) -> MessagePage:
    """A page of ``query``'s results in ``query.folder``, newest first (the listing's cursor)."""
    summaries = imap_mail.summaries
    limit = check_limit(query.limit)
    client = connector._require()
    program = compile_search(query, gmail=client.has("X-GM-EXT-1"))
    position = imap_mail.decode_cursor(query.cursor, query.folder) if query.cursor else None
    uidvalidity, _ = await open_folder(connector, query.folder)
    keys = list(program.keys)
    if position is not None:
        top = imap_mail.below_cursor(position, uidvalidity, query.folder)
        if top < 1:
            return MessagePage([], None)
        keys.insert(0, f"UID 1:{top}".encode())
    found = await run_search(connector, query.folder, keys, charset=program.charset, native=program.native)
    candidates = sorted(found, reverse=True)
    if not program.checks:
        page = candidates[:limit]
        items = await summaries(connector, query.folder, uidvalidity, page)
        more = len(candidates) > limit
        cursor = imap_mail.encode_cursor(query.folder, uidvalidity, page[-1]) if more else None
        return MessagePage(_newest_first(items), cursor)
    kept: list[MessageSummary] = []
    checked = 0
    while checked < len(candidates) and len(kept) < limit and checked < CHECK_LIMIT:
        page = candidates[checked : checked + min(CHECK_PAGE, CHECK_LIMIT - checked)]
        items = _newest_first(await summaries(connector, query.folder, uidvalidity, page))
        for item in items:
            if program.admits(item):
                kept.append(item)
                if len(kept) == limit:
                    break
        if len(kept) == limit:
            last = int(kept[-1].ref.item)
            checked = candidates.index(last) + 1
        else:
            checked += len(page)
    more = checked < len(candidates)
    return MessagePage(
        kept, imap_mail.encode_cursor(query.folder, uidvalidity, candidates[checked - 1]) if more else None
    )


def _newest_first(items: Sequence[MessageSummary]) -> list[MessageSummary]:
    return sorted(items, key=lambda s: int(s.ref.item), reverse=True)
