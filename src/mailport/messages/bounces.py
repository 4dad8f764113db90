"""Recognise bounces (delivery status notifications) and abuse complaints in received mail.

Pure and stateless: ``classify(raw)`` looks at one message and answers a :class:`Bounce`, a
:class:`Complaint`, a :class:`DeliveryNotice` or ``None``. Ingestion turns the answer into
``message.bounced`` / ``message.complaint`` events and links it to the send through
``original_message_id`` (without angle brackets, like every id in mailport).

Order of the checks, and why:

1. ``multipart/report`` is the standard signal and wins over everything else (RFC 3464
   ``report-type=delivery-status``, RFC 5965 ``report-type=feedback-report``). Real DSNs carry
   ``Auto-Submitted: auto-replied`` themselves, so that header cannot veto a report.
2. The common non-standard formats (Postfix, Exim, Exchange, Gmail, qmail; see
   :mod:`mailport.messages.bounce_formats`) are recognised only when the sender is a mail
   system (MAILER-DAEMON, postmaster, Exchange's system mailbox, or an empty Return-Path on a
   message without auto-reply markers): a person writing "undeliverable" is not a bounce, nor
   is an out-of-office reply (``Auto-Submitted`` other than ``no``, ``X-Autoreply``,
   ``X-Autorespond``, ``Precedence: auto_reply``) from a person.

A report whose every recipient was ``delivered``, ``relayed`` or ``expanded`` is a success, a
:class:`DeliveryNotice`; ``delayed`` recipients make a :class:`Bounce` that is not a failure
(``severity == "soft"``, ``failed`` false): the mail is still queued.

A report wrapped one level down in another multipart is found only when the sender is a mail
system: a header-only look (:func:`worth_classifying`) decides whether the whole message is
parsed at all. Ingestion runs that look on the header fields its own parser has already split,
so ordinary mail costs a few microseconds (``bench/bounce_check.py``).

The stdlib's compat32 parser reads the MIME tree: it never raises on malformed structure, and
every step below is guarded so that garbage answers ``None``.
"""

from __future__ import annotations

import email
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from email.utils import collapse_rfc2231_value
from typing import Literal

from mailport.messages import bounce_formats
from mailport.messages import headers as hdr
from mailport.messages.headers import msg_ids

Action = Literal["failed", "delayed", "delivered", "relayed", "expanded"]
Severity = Literal["hard", "soft"]

_ACTIONS: frozenset[str] = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})
_SUCCESS: frozenset[str] = frozenset({"delivered", "relayed", "expanded"})
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"(?<![\d.])([245])\d\d(?![\d.])")
_HEAD_LIMIT = 256 * 1024
_ADDR_TYPE = re.compile(r"^\s*[A-Za-z0-9-]+\s*;\s*")
# The fields worth_classifying reads (bounce_formats.from_mail_system and is_auto_reply included).
_CHECKED = frozenset(
    {"content-type", "from", "sender", "return-path", "auto-submitted", "precedence"}
    | set(bounce_formats.AUTO_REPLY_HEADERS)
)


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    """One recipient's line of a report: what happened to the mail for this address."""

    recipient: str
    action: Action
    status: str | None = None
    diagnostic: str | None = None
    original_recipient: str | None = None
    remote_mta: str | None = None

    @property
    def severity(self) -> Severity | None:
        """``hard`` for a permanent failure (5.x.x, or failed without a status), ``soft`` for a
        temporary one or a delay, ``None`` for a success."""
        if self.action in _SUCCESS:
            return None
        if self.action == "delayed":
            return "soft"
        if self.status and self.status.startswith("4."):
            return "soft"
        return "hard"


@dataclass(frozen=True, slots=True)
class Bounce:
    """A delivery failure or delay report; ``format`` names where it was recognised from."""

    format: str
    recipients: tuple[RecipientStatus, ...]
    original_message_id: str | None = None
    reporting_mta: str | None = None

    @property
    def failed(self) -> bool:
        """True when at least one recipient definitely did not get the mail (delays don't count)."""
        return any(r.action == "failed" for r in self.recipients)

    @property
    def severity(self) -> Severity:
        """``hard`` when any recipient failed permanently, else ``soft``."""
        return "hard" if any(r.severity == "hard" for r in self.recipients) else "soft"


@dataclass(frozen=True, slots=True)
class DeliveryNotice:
    """A delivery report that says the mail arrived (``delivered``/``relayed``/``expanded``)."""

    recipients: tuple[RecipientStatus, ...]
    original_message_id: str | None = None
    reporting_mta: str | None = None


@dataclass(frozen=True, slots=True)
class Complaint:
    """An abuse / feedback report (ARF, RFC 5965)."""

    feedback_type: str
    user_agent: str | None = None
    original_mail_from: str | None = None
    original_rcpt_to: tuple[str, ...] = ()
    arrival_date: str | None = None
    source_ip: str | None = None
    reported_domain: str | None = None
    original_message_id: str | None = None


Classification = Bounce | Complaint | DeliveryNotice | None


def classify(raw: bytes) -> Classification:
    """What this message reports, or ``None`` for ordinary mail (see the module docstring)."""
    try:
        if not _worth_parsing(raw):
            return None
        message = email.message_from_bytes(raw)
        return _classify(message)
    except Exception:  # garbage must answer None, never raise: the parser's edges are many
        return None


def worth_classifying(headers: Iterable[tuple[str, str]]) -> bool:
    """Could a message with these header fields be a report? Only a ``multipart/report`` or mail
    from a mail system can (see the module docstring); anything else is ordinary mail and is not
    parsed again. ``headers`` are ``(name, value)`` pairs as :func:`mailport.messages.headers.
    parse_block` splits them (``Message.headers`` of a parsed message)."""
    fields: dict[str, str] = {}
    for name, value in headers:  # only the few fields the decision reads: ~2x cheaper than all
        key = name.lower()
        if key in _CHECKED and key not in fields:
            fields[key] = value
    if fields.get("content-type", "").split(";", 1)[0].strip().lower() == "multipart/report":
        return True
    return bounce_formats.from_mail_system(fields)


def _worth_parsing(raw: bytes) -> bool:
    """The header-only look of :func:`worth_classifying` on raw bytes, so that ordinary mail
    (attachments and all) is not parsed in full."""
    window = raw[:_HEAD_LIMIT]
    start = hdr.message_start(window)
    end, _ = hdr.header_end(window, start, len(window))
    return worth_classifying(hdr.parse_block(window[start:end]))


def _classify(message: Message) -> Classification:
    report = _find_report(message)
    if report is not None:
        param = report.get_param("report-type")
        report_type = collapse_rfc2231_value(param).strip().lower() if param else ""
        if report_type == "delivery-status":
            found = _delivery_status(report)
            if found is not None:
                return found
        elif report_type == "feedback-report":
            complaint = _feedback_report(report)
            if complaint is not None:
                return complaint
    if not bounce_formats.from_mail_system(message):
        return None
    text = bounce_formats.body_text(message)
    parsed = bounce_formats.parse(message, text)
    if parsed is None:
        return None
    fmt, recipients = parsed
    statuses = tuple(
        RecipientStatus(
            recipient=r.recipient,
            action="delayed" if r.delayed else "failed",
            status=r.status or _status_from(r.diagnostic),
            diagnostic=r.diagnostic,
        )
        for r in recipients
    )
    return Bounce(format=fmt, recipients=statuses, original_message_id=original_message_id(message, text))


def _find_report(message: Message) -> Message | None:
    """The ``multipart/report`` part: the message itself, or one level down (some gateways wrap it)."""
    if message.get_content_type() == "multipart/report":
        return message
    if message.is_multipart():
        payload = message.get_payload()
        if isinstance(payload, list):
            for part in payload:
                if isinstance(part, Message) and part.get_content_type() == "multipart/report":
                    return part
    return None


def _parts(message: Message) -> list[Message]:
    payload = message.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    return []


def _field_blocks(part: Message) -> list[dict[str, str]]:
    """The header-like blocks of a report part (see :func:`_field_text`)."""
    return _blocks(_field_text(part))


def _field_text(part: Message) -> str:
    """The text of a ``message/delivery-status`` or ``message/feedback-report`` part.

    The stdlib parses delivery-status into sub-messages, and feedback-report into a string (or
    one sub-message); the text is re-read here from either, so both shapes give the same blocks.
    """
    payload = part.get_payload(decode=False)
    if isinstance(payload, list):
        chunks = []
        for sub in payload:
            if isinstance(sub, Message):
                chunks.append("".join(f"{k}: {v}\n" for k, v in sub.items()))
        text = "\n".join(chunks)
    elif isinstance(payload, str):
        decoded = part.get_payload(decode=True)
        text = decoded.decode("utf-8", "replace") if isinstance(decoded, bytes) else payload
    else:
        return ""
    return text


def _blocks(text: str) -> list[dict[str, str]]:
    """Blank-line separated ``Name: value`` blocks, folded lines unfolded, names lower-cased."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last: str | None = None
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, None
        elif line[0] in " \t" and last is not None:
            current[last] += " " + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            last = name.strip().lower()
            current.setdefault(last, value.strip())
    if current:
        blocks.append(current)
    return blocks


def _strip_type(value: str | None) -> str | None:
    """``rfc822; user@example.com`` → ``user@example.com`` (address-type / mta-type prefix)."""
    if value is None:
        return None
    stripped = _ADDR_TYPE.sub("", value, count=1).strip().strip("<>").strip()
    return stripped or None


def _status_from(text: str | None) -> str | None:
    """An enhanced status code found in free text, else one made from a bare SMTP reply code."""
    if not text:
        return None
    match = _STATUS.search(text)
    if match:
        return ".".join(match.groups())
    code = _SMTP_CODE.search(text)
    if code and code.group(1) in "45":
        return f"{code.group(1)}.0.0"
    return None


def _delivery_status(report: Message) -> Bounce | DeliveryNotice | None:
    status_part = next(
        (
            p
            for p in _parts(report)
            if p.get_content_type() in ("message/delivery-status", "message/global-delivery-status")
        ),
        None,
    )
    if status_part is None:
        return None
    blocks = _field_blocks(status_part)
    reporting_mta: str | None = None
    recipients: list[RecipientStatus] = []
    for block in blocks:
        if "reporting-mta" in block and reporting_mta is None:
            reporting_mta = _strip_type(block["reporting-mta"])
        rcpt = _strip_type(block.get("final-recipient")) or _strip_type(block.get("original-recipient"))
        if rcpt is None:
            continue
        action = block.get("action", "").strip().lower().split(" ")[0]
        status_match = _STATUS.search(block.get("status", ""))
        status = ".".join(status_match.groups()) if status_match else None
        if action not in _ACTIONS:
            # An unknown action: judge by the status class, as RFC 3464 §2.3.4 ties them together.
            action = "delayed" if status and status.startswith("4.") else "failed"
        if status and status.startswith("2.") and action == "failed":
            action = "delivered"
        recipients.append(
            RecipientStatus(
                recipient=rcpt,
                action=action,  # type: ignore[arg-type]  # checked against _ACTIONS above
                status=status,
                diagnostic=_strip_type(block.get("diagnostic-code")),
                original_recipient=_strip_type(block.get("original-recipient")),
                remote_mta=_strip_type(block.get("remote-mta")),
            )
        )
    if not recipients:
        return None
    original = original_message_id(report, None)
    if original is None:
        # Gmail, among others, names the original in the per-message fields as well.
        quoted = next((b["x-original-message-id"] for b in blocks if "x-original-message-id" in b), None)
        original = next(iter(msg_ids(quoted)), None)
    problems = tuple(r for r in recipients if r.action not in _SUCCESS)
    if not problems:
        return DeliveryNotice(tuple(recipients), original, reporting_mta)
    return Bounce("dsn", problems, original, reporting_mta)


def _feedback_report(report: Message) -> Complaint | None:
    part = next((p for p in _parts(report) if p.get_content_type() == "message/feedback-report"), None)
    if part is None:
        return None
    text = _field_text(part)
    fields: dict[str, str] = {}
    for block in _blocks(text):
        for name, value in block.items():
            fields.setdefault(name, value)
    # Original-Rcpt-To repeats, one per recipient; the block parser keeps the first only.
    rcpts = re.findall(r"(?im)^original-rcpt-to:[ \t]*(.+?)[ \t]*$", text)
    feedback_type = fields.get("feedback-type", "").strip().lower()
    if not feedback_type:
        return None
    return Complaint(
        feedback_type=feedback_type,
        user_agent=fields.get("user-agent"),
        original_mail_from=_strip_type(fields.get("original-mail-from")),
        original_rcpt_to=tuple(r for r in (_strip_type(v) for v in rcpts) if r),
        arrival_date=fields.get("arrival-date") or fields.get("received-date"),
        source_ip=fields.get("source-ip"),
        reported_domain=fields.get("reported-domain"),
        original_message_id=original_message_id(report, None),
    )


def original_message_id(message: Message, text: str | None) -> str | None:
    """The Message-ID of the mail that bounced: from an attached ``message/rfc822`` or
    ``text/rfc822-headers`` part, else (non-standard bounces) from the copy quoted in ``text``."""
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                ids = msg_ids(str(inner[0].get("Message-ID", "")))
                if ids:
                    return ids[0]
        elif ctype in ("text/rfc822-headers", "message/global-headers"):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                found = _quoted_message_id(payload.decode("utf-8", "replace"))
                if found:
                    return found
    if text:
        return _quoted_message_id(bounce_formats.quoted_copy(text))
    return None


def _quoted_message_id(text: str) -> str | None:
    match = re.search(r"(?im)^[ \t>]*message-id:[ \t]*(.*(?:\n[ \t]+.*)*)", text)
    if not match:
        return None
    ids = msg_ids(match.group(1))
    return ids[0] if ids else None
