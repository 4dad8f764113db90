"""Header fields: split a header block, and decode the fields the normalized message needs.

Why hand-written parts: the stdlib's feed parser reads a header block line by line in Python
(~45 µs for the 2 KB block of a typical message, a third of the whole compat32 parse), while
one regular expression over the block does it in ~9 µs; and ``email.header.decode_header`` +
``make_header`` raise on bad base64 and on unknown charsets (``HeaderParseError``,
``LookupError``) and cannot apply our charset fallbacks, so RFC 2047 words are decoded here
(:func:`decode_words`, ~25 lines). Everything else is the stdlib's: ``getaddresses`` for
address lists, ``parsedate_to_datetime`` for dates, and compat32 ``Message`` parameter
parsing (RFC 2231 continuations and charsets) for ``Content-Type``/``Content-Disposition``.

Header values come in as Latin-1 text (one character per byte, so nothing is lost); a value
with 8-bit bytes is re-read as UTF-8 (then Windows-1252) by :func:`charsets.decode_8bit`.
"""

from __future__ import annotations

import binascii
import re
from datetime import UTC, datetime
from email.message import Message as _Compat32Message
from email.utils import collapse_rfc2231_value, getaddresses, parsedate_to_datetime

import idna

from mailport.messages.charsets import decode, decode_8bit
from mailport.messages.model import Address

# A field: a name of printable ASCII without ':' (RFC 5322 §3.6.8), optional blanks, ':', and the
# value with its continuation lines. '.' also matches '\r', so CRLF and LF both work.
_FIELD = re.compile(r"^([\x21-\x39\x3b-\x7e]+)[ \t]*:(.*(?:\n[ \t].*)*)", re.M)
_HEADER_START = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")
# A line break followed by a line that neither starts a field nor continues one: as in the
# stdlib's feed parser, the header block ends there and that line is the body's first.
_NON_FIELD_LINE = re.compile(rb"\n(?![ \t]|[\x21-\x39\x3b-\x7e]+[ \t]*:)")
# An RFC 2047 encoded-word; the charset may carry an RFC 2231 language ('utf-8*en').
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?]*?)\?=")
_BLANK = re.compile(r"[ \t\r\n]*")
_MSG_ID = re.compile(r"<([^<>\s]+)>")
_ADDRESS_PIECE = re.compile(r'(?:"[^"]*"|[^,"])+')
_SIMPLE_ADDRESS = re.compile(
    r'(?:("[^"]*"|[^<>":,]*)<([^<>\s@",:]+@[^<>\s@",:]+)>|([^<>\s@",:]+@[^<>\s@",:]+))'
)  # matched against stripped pieces: blanks around it would make it quadratic
# Longer parameter fields are cut: the stdlib's parameter splitter is quadratic in their length.
MAX_PARAM_FIELD = 16_384
# Longer address fields are cut before the stdlib's character-by-character address parser.
MAX_ADDRESS_FIELD = 65_536
_EMPTY_GROUP = re.compile(r"[^:;<>@]*:[ \t]*;?[ \t]*")  # 'undisclosed-recipients:;'
_LOCAL_ONLY = re.compile(r'[^\s@<>"(),;:\[\]]+')
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
# ``type/subtype; charset=<token>`` (quoted or not) and nothing else, the Content-Type of nearly
# every text part: its charset is read here, the rest goes through compat32's parameter parser
# (~8 µs, a tenth of a small message's parse). Nothing that parser treats specially may occur:
# no '=' before the ';' (the first segment would count as a parameter), no quotes, backslashes,
# RFC 2231 '*' or non-ASCII letters in the name or value, only spaces and tabs as blanks.
_PLAIN_CHARSET = re.compile(
    r'[^;"\\=/]*/[^;"\\=]*;[ \t]*[Cc][Hh][Aa][Rr][Ss][Ee][Tt][ \t]*=[ \t]*'
    r"(\"?)([A-Za-z0-9!#$%&'+\-.^_`{|}~]+)\1[ \t]*"
)

Headers = list[tuple[str, str]]


def message_start(raw: bytes) -> int:
    """Where the first header field begins: after a UTF-8 byte-order mark some tools write."""
    return 3 if raw.startswith(b"\xef\xbb\xbf") else 0


def header_end(raw: bytes, start: int, end: int) -> tuple[int, int]:
    """Where the header block that starts at ``start`` ends, and where the body begins.

    The block ends at the first empty line (CRLF or LF). Without one, the whole range is
    headers. An entity whose first line is not a header field has no headers (the body starts
    at ``start``), as in a MIME part written without its blank line. A line that is neither a
    field nor a continuation ends the block too and begins the body, as the stdlib's parser
    does (``MissingHeaderBodySeparatorDefect``): then the block end equals the body start, which
    :func:`runs_into_body` reports.
    """
    if raw.startswith(b"\r\n", start, end):
        return start, start + 2
    if raw.startswith(b"\n", start, end):
        return start, start + 1
    if not _HEADER_START.match(raw, start, end) and not raw.startswith(b"From ", start, end):
        return start, start
    crlf = raw.find(b"\n\r\n", start, end)
    lf = raw.find(b"\n\n", start, end if crlf == -1 else crlf)  # not past the CRLF one: big bodies
    if crlf != -1 and (lf == -1 or crlf < lf):
        head_end, body_start = crlf + 1, crlf + 3
    elif lf != -1:
        head_end, body_start = lf + 1, lf + 2
    else:
        head_end = body_start = end
    # the block's own last line break is followed by the blank line (or the end): not searched
    stop = head_end - 1 if raw[head_end - 1 : head_end] == b"\n" else head_end
    stray = _NON_FIELD_LINE.search(raw, start, stop)
    if stray is not None:
        return stray.end(), stray.end()
    return head_end, body_start


def runs_into_body(start: int, head_end: int, body_start: int, end: int) -> bool:
    """Whether :func:`header_end` found header fields running straight into body text (no
    blank line between them): the text is kept as body, and this is worth a defect."""
    return start < head_end == body_start < end


def parse_block(block: bytes) -> Headers:
    """``[(name, value)]`` of a header block: values unfolded, stripped, 8-bit bytes decoded.

    NUL characters become U+FFFD: PostgreSQL cannot store them in text or JSONB.
    """
    text = block.decode("latin-1")
    out: Headers = []
    for name, value in _FIELD.findall(text):
        if "\n" in value:  # unfold (RFC 5322 §2.2.3): drop the line breaks, keep the blanks
            value = value.replace("\r\n", "").replace("\n", "")
        value = value.strip(" \t\r\n")  # not str.strip(): 0x85 and 0xA0 may be UTF-8 bytes
        if not value.isascii():
            value = decode_8bit(value)
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        out.append((name, value))
    return out


def first(headers: Headers) -> dict[str, str]:
    """A lookup of the first value of each field, by lower-case name."""
    found: dict[str, str] = {}
    for name, value in headers:
        found.setdefault(name.lower(), value)
    return found


def decode_words(value: str) -> tuple[str, bool]:
    """Decode RFC 2047 encoded-words in ``value``; returns ``(text, had_defect)``.

    Blanks between adjacent encoded-words are dropped (RFC 2047 §6.2), and adjacent words in
    the same charset are decoded together, so a character split across two words (which
    real mailers do) survives. Bad base64 is repaired; unknown charsets fall back. Words that
    touch surrounding text are decoded too, as mail clients do.
    """
    if "=?" not in value:
        return value, False
    out: list[str] = []
    pending = bytearray()
    pending_charset: str | None = None
    defect = False
    pos = 0

    def flush() -> None:
        nonlocal pending_charset, defect
        if pending_charset is not None:
            text, fell_back = decode(bytes(pending), pending_charset)
            out.append(text)
            defect = defect or fell_back
            pending.clear()
            pending_charset = None

    for match in _ENCODED_WORD.finditer(value):
        between = value[pos : match.start()]
        charset = match.group(1).split("*", 1)[0].lower()
        if pending_charset is not None and _BLANK.fullmatch(between):
            if charset != pending_charset:
                flush()
        else:
            flush()
            out.append(between)
        payload = match.group(3)
        if match.group(2) in "Qq":
            data = binascii.a2b_qp(payload.encode("latin-1", "replace"), header=True)
        else:
            data, bad = b64decode(payload.encode("latin-1", "replace"))
            defect = defect or bad
        pending += data
        pending_charset = charset
        pos = match.end()
    flush()
    out.append(value[pos:])
    return "".join(out).replace("\x00", "\ufffd"), defect


def b64decode(data: bytes | memoryview) -> tuple[bytes, bool]:
    """Base64 that never raises: ``(bytes, was_broken)``; junk and bad padding are repaired."""
    try:
        return binascii.a2b_base64(data), False
    except (binascii.Error, ValueError):
        clean = _B64_JUNK.sub(b"", bytes(data))
        clean = clean[: len(clean) - len(clean) % 4] if len(clean) % 4 == 1 else clean
        clean += b"=" * (-len(clean) % 4)
        try:
            return binascii.a2b_base64(clean), True
        except (binascii.Error, ValueError):  # pragma: no cover - cleaned input always decodes
            return b"", True


def addresses(value: str | None) -> tuple[tuple[Address, ...], bool]:
    """An address list as ``Address(name, email)``s; ``(addresses, had_defect)``.

    Names are RFC 2047-decoded after splitting (a decoded name may contain commas); IDNA
    domains (``xn--``) are shown in Unicode. Empty entries and empty groups
    (``undisclosed-recipients:;``) are dropped; a lone local name (``root``) is kept as the
    address; any other value without an ``@`` address becomes one
    ``Address(name=<the decoded text>, email="")`` and counts as a defect.
    """
    if not value:
        return (), False
    defect = False
    if len(value) > MAX_ADDRESS_FIELD:
        value, defect = value[:MAX_ADDRESS_FIELD], True
    out: list[Address] = []
    for name, email in _simple_addresses(value) or getaddresses([value]):
        if not name and not email:
            continue
        if "=?" in name:
            name, bad = decode_words(name)
            defect = defect or bad
        out.append(Address(name=name, email=_unicode_domain(email)))
    if any("@" in address.email for address in out) or _EMPTY_GROUP.fullmatch(value):
        return tuple(out), defect
    bare = value.strip(" \t")
    if _LOCAL_ONLY.fullmatch(bare):  # 'root': a local mailbox, as cron writes it
        return (Address(name="", email=bare),), defect
    text = decode_words(value)[0].strip(" \t;:<>,")
    return ((Address(name=text, email=""),) if text else ()), bool(text)


def _simple_addresses(value: str) -> list[tuple[str, str]] | None:
    """The common forms (``a@b``, ``Name <a@b>``, ``"Name, Q." <a@b>``) without the stdlib's
    character-by-character parser (~25 µs per address); None sends anything else to it.
    """
    if "(" in value or ";" in value or "\\" in value:
        return None
    pieces = _ADDRESS_PIECE.findall(value) if '"' in value else value.split(",")
    out: list[tuple[str, str]] = []
    for piece in pieces:
        piece = piece.strip(" \t")
        if not piece:
            continue
        match = _SIMPLE_ADDRESS.fullmatch(piece)
        if match is None:
            return None
        name, angle, bare = match.groups()
        if bare is not None:
            out.append(("", bare))
            continue
        name = (name or "").strip(" \t")
        if name.startswith('"') and name.endswith('"') and len(name) >= 2:
            name = name[1:-1]
        else:
            name = " ".join(name.split())
        out.append((name, angle))
    return out


def _unicode_domain(email: str) -> str:
    local, at, domain = email.rpartition("@")
    if not at or "xn--" not in domain.lower():
        return email
    try:
        return f"{local}@{idna.decode(domain)}"
    except (idna.IDNAError, UnicodeError, ValueError):
        return email


def date(value: str | None) -> datetime | None:
    """A ``Date:`` value as an aware UTC datetime; None when it cannot be read.

    A zone of ``-0000`` (RFC 5322 "no zone information") is taken as UTC.
    """
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def msg_ids(value: str | None) -> list[str]:
    """The ids in a Message-ID, In-Reply-To or References value, without angle brackets.

    Ids written without brackets (some mailers do) are taken as blank-separated words.
    """
    if not value:
        return []
    found = _MSG_ID.findall(value)
    if found:
        return found
    return [word for word in re.split(r"[\s,]+", value) if "@" in word]


class ParamHeaders:
    """Content-Type / Content-Disposition parameters through the stdlib's compat32 ``Message``.

    compat32 parses parameters (quoting, RFC 2231 continuations and charsets) without the
    header registry's cost; only the two fields are handed to it.
    """

    __slots__ = ("_msg",)

    def __init__(self, content_type: str | None, disposition: str | None) -> None:
        self._msg = _Compat32Message()
        if content_type:
            self._msg.set_raw("Content-Type", content_type[:MAX_PARAM_FIELD])
        if disposition:
            self._msg.set_raw("Content-Disposition", disposition[:MAX_PARAM_FIELD])

    def content_type(self, default: str = "text/plain") -> str:
        if default != "text/plain":
            self._msg.set_default_type(default)
        return self._msg.get_content_type()

    def charset(self) -> str | None:
        value = self._msg.get("content-type")
        if value is not None:
            plain = _PLAIN_CHARSET.fullmatch(value)
            if plain is not None:  # what the stdlib answers for this shape, ~10x faster
                return plain.group(2).lower()
        try:
            return self._msg.get_content_charset()
        except (LookupError, UnicodeError, ValueError):
            return None

    def boundary(self) -> str | None:
        boundary = self._msg.get_boundary()
        return boundary or None

    def disposition(self) -> str | None:
        value = self._msg.get_content_disposition()
        return value.lower() if value else None

    def filename(self) -> tuple[str | None, bool]:
        """The decoded filename (``filename``, else ``name``), RFC 2231 and RFC 2047 alike."""
        name = self._msg.get_filename()
        if name is None:
            raw = self._msg.get_param("name")
            if raw is not None:
                name = collapse_rfc2231_value(raw).strip()
        if not name:
            return None, False
        bad = False
        if not name.isascii():
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:  # an RFC 2231 charset such as utf-7 made lone surrogates
                name, bad = name.encode("utf-8", "replace").decode("utf-8"), True
        text, bad_words = decode_words(name.replace("\x00", "\ufffd"))
        return text, bad or bad_words
