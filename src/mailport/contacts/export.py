"""Export contacts as CSV and as vCard 4.0 (RFC 6350), streamed one contact at a time.

Both writers take any iterable of :class:`ContactCard` and yield one chunk per contact (plus the
CSV header), so a 100,000-contact export is sent as it is written instead of being built as one
string. :class:`ContactCard` is this module's own small input type, so the writers do not depend
on how contacts are stored; the caller maps its rows onto it.

Why hand-written: of the vCard libraries on PyPI, ``vobject`` serializes a VCARD as vCard 3.0
(it stamps ``VERSION:3.0`` and applies 3.0's rules, such as a required ``N``) and would add
``pytz``, ``six`` and ``dateutil`` as runtime dependencies; the others are unmaintained
(``vcard``/``vcard-module``, ``vcardreader``, ``pycarddav``) or young single-author releases
(``pythonvcard4``). What we write is small: seven properties, RFC 6350's text escaping and
octet-based folding. ``vobject`` (Apache-2.0) parses vCard 4.0 fine, so the tests use it as the
independent reader. CSV goes through the standard :mod:`csv` module; only the formula-injection
guard is ours.

CSV columns (:data:`CSV_COLUMNS`), one row per contact, RFC 4180 quoting and CRLF line ends:

``display_name``, ``primary_email``, ``other_emails``, ``organisation``, ``groups``,
``first_seen``, ``last_seen`` (ISO 8601 UTC, ``2026-01-02T03:04:05Z``), ``sent_to``,
``received_from`` (message counts), ``two_way`` (``true``/``false``), ``score`` (decimal).
Multi-valued cells (``other_emails``, ``groups``) are joined with `` ::: ``, the separator
Google Contacts' CSV uses. Text cells that a spreadsheet would run as a formula (first character
``=``, ``+``, ``-``, ``@``, tab or carriage return) get a leading ``'``, as OWASP's "CSV
Injection" page recommends; a reader that wants the raw value strips one leading ``'`` from such
a cell.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "CSV_COLUMNS",
    "MULTI_VALUE_SEPARATOR",
    "ContactCard",
    "contact_uid",
    "csv_rows",
    "neutralise_formula",
    "vcard",
    "vcards",
]

CSV_COLUMNS: tuple[str, ...] = (
    "display_name",
    "primary_email",
    "other_emails",
    "organisation",
    "groups",
    "first_seen",
    "last_seen",
    "sent_to",
    "received_from",
    "two_way",
    "score",
)
MULTI_VALUE_SEPARATOR = " ::: "

# Fixed namespace for the vCard UID: the same contact id gives the same UID in every export, so
# an address book that re-imports updates the card instead of adding a second one.
_UID_NAMESPACE = uuid.UUID("6f1c3a52-9d0e-5b8a-a4a7-1b1e8c0d6a31")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_LINE_OCTETS = 75  # RFC 6350 section 3.2, excluding the CRLF
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NEWLINE = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class ContactCard:
    """One contact as the exporters see it; ``emails`` has the primary address first.

    ``updated_at`` (when the contact last changed) becomes the vCard ``REV``; without it
    ``last_seen`` is used, and without both the card has no ``REV``.
    """

    id: str
    display_name: str | None
    emails: tuple[str, ...]
    organisation: str | None = None
    groups: tuple[str, ...] = ()
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    sent_to: int = 0
    received_from: int = 0
    two_way: bool = False
    score: float = 0.0
    updated_at: datetime | None = None


# ---------------------------------------------------------------- CSV


def neutralise_formula(cell: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet would evaluate (OWASP CSV injection guidance)."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def _utc(moment: datetime | None, fmt: str) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:
        raise ValueError("contact timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime(fmt)


def _csv_cells(card: ContactCard) -> list[str]:
    text = [
        card.display_name or "",
        card.emails[0] if card.emails else "",
        MULTI_VALUE_SEPARATOR.join(card.emails[1:]),
        card.organisation or "",
        MULTI_VALUE_SEPARATOR.join(card.groups),
    ]
    return [neutralise_formula(cell) for cell in text] + [
        _utc(card.first_seen, "%Y-%m-%dT%H:%M:%SZ"),
        _utc(card.last_seen, "%Y-%m-%dT%H:%M:%SZ"),
        str(card.sent_to),
        str(card.received_from),
        "true" if card.two_way else "false",
        repr(float(card.score)),
    ]


def csv_rows(cards: Iterable[ContactCard], *, header: bool = True) -> Iterator[str]:
    """Yield the CSV text: the header row first (unless ``header=False``), then one row per contact."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_COLUMNS)
        yield _drain(buffer)
    for card in cards:
        writer.writerow(_csv_cells(card))
        yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    chunk = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return chunk


# ---------------------------------------------------------------- vCard 4.0


def contact_uid(contact_id: str) -> str:
    """The stable ``urn:uuid`` a contact carries in every export (RFC 6350 section 6.7.6)."""
    return f"urn:uuid:{uuid.uuid5(_UID_NAMESPACE, contact_id)}"


def _escape(value: str) -> str:
    """RFC 6350 section 3.4: backslash, comma, semicolon and newlines escaped; controls dropped."""
    value = _CONTROL.sub("", value)
    value = value.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;")
    return _NEWLINE.sub("\\\\n", value)


def _fold(line: str) -> bytes:
    """Fold a content line at 75 octets (RFC 6350 section 3.2), never inside a UTF-8 sequence."""
    data = line.encode("utf-8")
    if len(data) <= _LINE_OCTETS:
        return data + b"\r\n"
    parts: list[bytes] = []
    start, limit = 0, _LINE_OCTETS
    while len(data) - start > limit:
        end = start + limit
        while data[end] & 0xC0 == 0x80:  # a continuation byte: back off to the character start
            end -= 1
        parts.append(data[start:end])
        start, limit = end, _LINE_OCTETS - 1  # the leading space counts toward the 75
    parts.append(data[start:])
    return b"\r\n ".join(parts) + b"\r\n"


def vcard(card: ContactCard) -> bytes:
    """One vCard 4.0 in UTF-8 with CRLF line ends.

    ``N`` is left out: RFC 6350 makes it optional, and splitting a display name into family and
    given names guesses wrong for many cultures. ``FN`` is required, so a nameless contact is
    named by its primary address.
    """
    name = (card.display_name or "").strip() or (card.emails[0] if card.emails else "")
    lines = ["BEGIN:VCARD", "VERSION:4.0", f"FN:{_escape(name)}"]
    for index, email in enumerate(card.emails):
        lines.append(f"EMAIL;PREF=1:{_escape(email)}" if index == 0 else f"EMAIL:{_escape(email)}")
    if card.organisation:
        lines.append(f"ORG:{_escape(card.organisation)}")
    groups = [group for group in card.groups if group]
    if groups:
        lines.append("CATEGORIES:" + ",".join(_escape(group) for group in groups))
    lines.append(f"UID:{contact_uid(card.id)}")
    revision = card.updated_at or card.last_seen
    if revision is not None:
        lines.append(f"REV:{_utc(revision, '%Y%m%dT%H%M%SZ')}")
    lines.append("END:VCARD")
    return b"".join(_fold(line) for line in lines)


def vcards(cards: Iterable[ContactCard]) -> Iterator[bytes]:
    """Yield a ``.vcf`` stream, one vCard per chunk."""
    for card in cards:
        yield vcard(card)
