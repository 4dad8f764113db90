"""Raw RFC 5322 bytes -> the normalized :class:`~mailport.messages.model.Message`, fast and never failing.

Design (performance is the driver: ingestion must reach 1,000 msg/s on two shared cores
*including* Dovecot, fetching and delivery, so parsing must be several times faster on one):

* The stdlib with ``policy.default`` costs ~920 µs per 5 KB message, ~2,800 µs with
  ``get_body``/``get_content`` and ``str()`` of the headers (PERF-NOTES; three quarters of it
  re-parsing ``Content-Type`` through the header registry): ~360 msg/s, far too slow.
* ``compat32`` parsing alone measured 81 µs per 6.5 KB message here (45 µs of it the header
  block, read line by line in Python), 119 µs with the subject and one address list decoded,
  and 1.85 s / 224 MB peak for a message with a 20 MB attachment.
* So the structure is found with ``bytes.find`` over the raw bytes (:mod:`.mime`: no line
  splitting, no copies, parts are offsets), a header block is split by one regular expression
  (:mod:`.headers`, ~9 µs), and only the fields the payload needs are decoded, with the
  stdlib's own functions where they cannot fail us: ``getaddresses``, ``parsedate_to_datetime``,
  compat32 ``Message`` parameter parsing (RFC 2231), ``binascii.a2b_base64``/``a2b_qp``, plus
  our RFC 2047 decoder and charset fallbacks (:mod:`.charsets`).
* Measured with ``bench/parse.py`` (one core, CPU time, ~5.6 KB messages, machine shared with
  other builds): ``parse_message`` + ``to_dict()`` 107-167 µs (6,000-9,400 msg/s) against
  1,200-1,930 µs (520-830 msg/s) for ``policy.default`` + ``get_body``/``get_content``: 10-14x;
  compat32's bare parse, decoding nothing, is 75-85 µs. Mixed corpus (20 % multipart with
  attachments): 185-275 µs. A 20 MB attachment: 0.14 s and ~22 MB peak (compat32: 1.9 s, 224 MB).
  Details in ``docs/messages.md``.

Correctness is checked against ``policy.default`` on a corpus (``tests/unit/messages``):
subjects, names and addresses, dates, text and HTML bodies, attachment names (RFC 2231 and
RFC 2047), sizes and content-ids must match.

Robustness: :func:`parse_message` never raises. Malformed input is normalized as far as it can
be read and the problems are listed in ``parse_error`` (``"; "``-separated); an unexpected
exception falls back to a header-only message with the exception named in ``parse_error``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable

from mailport.errors import NotFoundError
from mailport.messages import headers as hdr
from mailport.messages.charsets import decode
from mailport.messages.mime import MAX_DEPTH, MAX_PARTS, Leaf, Structure, decode_body, parse_structure
from mailport.messages.model import Address, Attachment, Disposition, Message
from mailport.messages.threading import thread_key

_BODY_TYPES = ("text/plain", "text/html")


def parse_message(
    raw: bytes,
    *,
    mailbox_id: str,
    folder: str,
    flags: Iterable[str] = (),
    size: int | None = None,
    max_depth: int = MAX_DEPTH,
    max_parts: int = MAX_PARTS,
) -> Message:
    """Normalize a whole message. Never raises; problems are reported in ``parse_error``.

    ``size`` defaults to ``len(raw)`` (pass the server's RFC822.SIZE when known).
    """
    raw = bytes(raw)
    ids = _Ids(mailbox_id, folder, tuple(flags), len(raw) if size is None else size)
    try:
        structure = parse_structure(raw, max_depth=max_depth, max_parts=max_parts)
        return _normalize(raw, structure, ids, truncated=False)
    except Exception as exc:  # the contract is "never raises"; the cause is reported
        return _fallback(raw, ids, exc)


def parse_headers_only(
    raw_headers: bytes,
    size: int,
    *,
    mailbox_id: str,
    folder: str,
    flags: Iterable[str] = (),
) -> Message:
    """Normalize an oversized message from its header block only: ``truncated=True``, no bodies.

    ``size`` is the full message's size (RFC822.SIZE). Never raises.
    """
    raw_headers = bytes(raw_headers)
    ids = _Ids(mailbox_id, folder, tuple(flags), size)
    try:
        start = hdr.message_start(raw_headers)
        head_end, _ = hdr.header_end(raw_headers, start, len(raw_headers))
        headers = hdr.parse_block(raw_headers[start:head_end])
        structure = Structure(headers, hdr.first(headers), [], [])
        return _normalize(raw_headers, structure, ids, truncated=True)
    except Exception as exc:  # never raises, as parse_message
        return _fallback(raw_headers, ids, exc, truncated=True)


def attachment_content(
    raw: bytes, index: int, *, max_depth: int = MAX_DEPTH, max_parts: int = MAX_PARTS
) -> tuple[Attachment, bytes]:
    """Attachment ``index`` (as numbered in ``Message.attachments``) and its decoded bytes.

    Pass the same limits as to ``parse_message`` (the defaults alike) so the numbers agree.
    Raises :class:`~mailport.errors.NotFoundError` when the message has no such attachment.
    """
    raw = bytes(raw)
    _, _, leaves = _classify(parse_structure(raw, max_depth=max_depth, max_parts=max_parts).leaves)
    if not 0 <= index < len(leaves):
        raise NotFoundError(
            f"the message has no attachment {index} (it has {len(leaves)})",
            hint="List the message's attachments; they are numbered from 0.",
        )
    meta, data, _ = _attachment(raw, index, leaves[index])
    return meta, data


class _Ids:
    __slots__ = ("flags", "folder", "mailbox_id", "size")

    def __init__(self, mailbox_id: str, folder: str, flags: tuple[str, ...], size: int) -> None:
        self.mailbox_id, self.folder = mailbox_id, folder
        self.flags, self.size = flags, size


def _normalize(raw: bytes, structure: Structure, ids: _Ids, *, truncated: bool) -> Message:
    defects = list(structure.defects)
    fields = structure.fields
    digest = hashlib.sha256(raw).hexdigest()
    message_ids = hdr.msg_ids(fields.get("message-id"))
    in_reply_to = hdr.msg_ids(fields.get("in-reply-to"))
    references = hdr.msg_ids(fields.get("references"))
    message_id = message_ids[0] if message_ids else None

    subject, bad = hdr.decode_words(fields.get("subject", ""))
    if bad:
        defects.append("subject: undecodable encoded-word or charset")
    lists: dict[str, tuple[Address, ...]] = {}
    for name in ("from", "sender", "reply-to", "to", "cc", "bcc"):
        lists[name], bad = hdr.addresses(fields.get(name))
        if bad:
            defects.append(f"{name}: unreadable address or name")
    date_raw = fields.get("date")
    date = hdr.date(date_raw)
    if date_raw and date is None:
        defects.append("date: unparseable")

    text_leaf, html_leaf, attachment_leaves = _classify(structure.leaves)
    text = _text(raw, text_leaf, defects)
    html = _text(raw, html_leaf, defects)
    attachments: list[Attachment] = []
    for index, leaf in enumerate(attachment_leaves):
        meta, _, defect = _attachment(raw, index, leaf)
        attachments.append(meta)
        if defect:
            defects.append(f"attachment {index}: {defect}")
    return Message(
        mailbox_id=ids.mailbox_id,
        folder=ids.folder,
        message_id=message_id,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=tuple(references),
        thread_key=thread_key(
            message_id=message_id, in_reply_to=in_reply_to, references=references, content_sha256=digest
        ),
        from_=lists["from"],
        sender=lists["sender"],
        reply_to=lists["reply-to"],
        to=lists["to"],
        cc=lists["cc"],
        bcc=lists["bcc"],
        subject=subject,
        date=date,
        date_raw=date_raw,
        text=text,
        html=html,
        attachments=tuple(attachments),
        size=ids.size,
        flags=ids.flags,
        headers=tuple(structure.headers),
        sha256=digest,
        parse_error="; ".join(dict.fromkeys(defects)) or None,
        truncated=truncated,
        raw=raw,
    )


def _classify(leaves: list[Leaf]) -> tuple[Leaf | None, Leaf | None, list[Leaf]]:
    """The text body, the HTML body, and the attachments, in depth-first order.

    The first ``text/plain`` and the first ``text/html`` leaf not marked
    ``Content-Disposition: attachment`` are the bodies (what ``get_body`` picks for
    multipart/alternative, /related and /mixed); every other leaf is an attachment, inline
    images included.
    """
    text = html = None
    attachments: list[Leaf] = []
    for leaf in leaves:
        if leaf.content_type in _BODY_TYPES and leaf.params.disposition() != "attachment":
            if leaf.content_type == "text/plain" and text is None:
                text = leaf
                continue
            if leaf.content_type == "text/html" and html is None:
                html = leaf
                continue
        attachments.append(leaf)
    return text, html, attachments


def _text(raw: bytes, leaf: Leaf | None, defects: list[str]) -> str | None:
    if leaf is None:
        return None
    data, defect = decode_body(raw, leaf)
    if defect:
        defects.append(f"{leaf.content_type} body: {defect}")
    charset = leaf.params.charset()
    text, fell_back = decode(data, charset)
    if fell_back:
        defects.append(f"{leaf.content_type} body: charset {charset!r} failed, decoded with a fallback")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if "\x00" in text:  # PostgreSQL cannot store NUL in text or JSONB
        text = text.replace("\x00", "\ufffd")
    return text


def _attachment(raw: bytes, index: int, leaf: Leaf) -> tuple[Attachment, bytes, str | None]:
    data, defect = decode_body(raw, leaf)
    filename, bad_name = leaf.params.filename()
    if bad_name:
        defect = "; ".join(filter(None, (defect, "undecodable filename")))
    content_id = hdr.msg_ids(leaf.fields.get("content-id"))
    cid = content_id[0] if content_id else (leaf.fields.get("content-id") or None)
    disposition: Disposition
    declared = leaf.params.disposition()
    if declared in ("inline", "attachment"):
        disposition = "inline" if declared == "inline" else "attachment"
    else:
        disposition = "inline" if cid else "attachment"
    meta = Attachment(
        index=index,
        section=leaf.section,
        filename=filename,
        content_type=leaf.content_type,
        size=len(data),
        content_id=cid,
        disposition=disposition,
    )
    return meta, data, defect


def _fallback(raw: bytes, ids: _Ids, exc: BaseException, *, truncated: bool = False) -> Message:
    """A message from whatever the header block gives, after an unexpected failure."""
    error = f"{type(exc).__name__}: {exc}"[:500]
    try:
        start = hdr.message_start(raw)
        head_end, _ = hdr.header_end(raw, start, len(raw))
        headers = hdr.parse_block(raw[start:head_end])
        message = _normalize(raw, Structure(headers, hdr.first(headers), [], []), ids, truncated=truncated)
    except Exception:  # even the header block is unreadable: ids only
        digest = hashlib.sha256(raw).hexdigest()
        return Message(
            mailbox_id=ids.mailbox_id,
            folder=ids.folder,
            message_id=None,
            in_reply_to=None,
            references=(),
            thread_key=thread_key(message_id=None, in_reply_to=(), references=(), content_sha256=digest),
            from_=(),
            sender=(),
            reply_to=(),
            to=(),
            cc=(),
            bcc=(),
            subject="",
            date=None,
            date_raw=None,
            text=None,
            html=None,
            attachments=(),
            size=ids.size,
            flags=ids.flags,
            headers=(),
            sha256=digest,
            parse_error=error,
            truncated=truncated,
            raw=raw,
        )
    return dataclasses.replace(message, parse_error="; ".join(filter(None, (error, message.parse_error))))
