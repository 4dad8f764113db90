"""The common non-standard bounce formats, recognised from their human-readable text.

Written from the public descriptions of each MTA's bounce wording:

- Postfix: ``This is the mail system at host …``; one ``<rcpt>: reason`` paragraph per recipient.
- Exim: ``This message was created automatically by mail delivery software``; the failed
  addresses indented under ``The following address(es) failed:`` (and in ``X-Failed-Recipients``).
- Exchange / Outlook: ``Delivery has failed to these recipients or groups``, with
  ``Remote Server returned '…'`` under ``Diagnostic information for administrators``.
- Gmail: ``Delivery Status Notification (Failure|Delay)``, ``Address not found``,
  ``Your message wasn't delivered to …``.
- qmail: ``Hi. This is the qmail-send program``; ``<rcpt>:`` paragraphs like Postfix.

Only the report section is read (the text before the quoted copy of the original), so
addresses inside the copy are never mistaken for failed recipients.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses

_ADDRESS = r"[^\s<>()\[\]'\",;:@]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+"
_ANGLE_RCPT = re.compile(rf"(?m)^[ \t]*<({_ADDRESS})>:?")
_LINE_RCPT = re.compile(rf"(?m)^[ \t]*<?({_ADDRESS})>?(?:[ \t]+\(.*\))?[ \t]*$")
_EXCHANGE_LINE = re.compile(rf"(?m)^[ \t]*<?({_ADDRESS})>?(?:[ \t]|$)")
_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_TAG = re.compile(r"<[^>]*>")

AUTO_REPLY_HEADERS = ("x-autoreply", "x-autorespond")
_SYSTEM_LOCALPARTS = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon", "microsoftexchange")
_SYSTEM_HINT = re.compile("|".join(_SYSTEM_LOCALPARTS), re.IGNORECASE)

_COPY_MARKERS = (
    "------ This is a copy of the message",
    "--- Below this line is a copy of the message",
    "----- Original message -----",
    "----- original message -----",
    "Original message headers:",
    "------ This is a copy of your message",
    "-----Original Message-----",
)

_DELAY_MARKERS = (
    "has not yet been delivered",
    "delivery to the following recipient has been delayed",
    "delivery status notification (delay)",
    "delivery incomplete",
    "will retry",
    "will keep trying",
    "delayed mail",
    "delivery delayed",
    "message delayed",
    "this is a temporary error",
    "still trying",
    "warning only",
    "still being retried",
)


Fields = Message | Mapping[str, str]
"""A parsed message, or its header fields by lower-case name (first value of each)."""


@dataclass(frozen=True, slots=True)
class TextRecipient:
    """A recipient read from a non-standard bounce."""

    recipient: str
    diagnostic: str | None
    status: str | None
    delayed: bool


def from_mail_system(message: Fields) -> bool:
    """Sent by a mail system rather than a person.

    A system mailbox in From/Sender (MAILER-DAEMON, postmaster, Exchange's system mailbox) is
    enough: real bounces carry ``Auto-Submitted: auto-replied`` too. An empty Return-Path alone
    counts only without auto-reply markers, because RFC 3834 asks out-of-office responders to
    send with an empty Return-Path as well.

    ``message`` is a parsed message or a mapping of lower-case field names to their first value.
    """
    from_, sender = str(message.get("from", "")), str(message.get("sender", ""))
    # A cheap look first (ordinary mail stops here); the address parser only then.
    if _SYSTEM_HINT.search(from_) or (sender and _SYSTEM_HINT.search(sender)):
        for _name, addr in getaddresses([from_, sender]):
            local = addr.split("@", 1)[0].lower()
            if local.startswith(_SYSTEM_LOCALPARTS):
                return True
    return str(message.get("return-path", "")).strip() == "<>" and not is_auto_reply(message)


def is_auto_reply(message: Fields) -> bool:
    """RFC 3834 ``Auto-Submitted`` (anything but ``no``) and the common vendor markers."""
    auto = str(message.get("auto-submitted", "")).strip().lower()
    if auto and not auto.startswith("no"):
        return True
    if any(message.get(name) is not None for name in AUTO_REPLY_HEADERS):
        return True
    return str(message.get("precedence", "")).strip().lower() == "auto_reply"


def body_text(message: Message) -> str:
    """The first readable text of the message (text/plain preferred, else HTML without tags)."""
    plain: str | None = None
    rich: str | None = None
    for part in message.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype not in ("text/plain", "text/html"):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            text = payload.decode(charset, "replace")
        except LookupError:
            text = payload.decode("utf-8", "replace")
        if ctype == "text/plain" and plain is None:
            plain = text
        elif ctype == "text/html" and rich is None:
            rich = html.unescape(_TAG.sub("\n", re.sub(r"(?i)<br\s*/?>", "\n", text)))
        # Only the first parts matter: stop once an inline message copy would follow.
        if plain is not None:
            break
    return (plain if plain is not None else rich or "").replace("\r\n", "\n")


def quoted_copy(text: str) -> str:
    """The quoted original after a copy marker (or the whole text when no marker is found)."""
    for marker in _COPY_MARKERS:
        index = text.find(marker)
        if index >= 0:
            return text[index + len(marker) :]
    return text


def _report_section(text: str) -> str:
    cut = len(text)
    for marker in _COPY_MARKERS:
        index = text.find(marker)
        if 0 <= index < cut:
            cut = index
    return text[:cut]


def detect(message: Message, text: str) -> str | None:
    """Which known format this bounce is, by its wording (``None`` when none matches)."""
    subject = str(message.get("Subject", "")).lower()
    lowered = text.lower()
    if "this is the qmail-send program" in lowered:
        return "qmail"
    if "this is the mail system at host" in lowered:
        return "postfix"
    if "created automatically by mail delivery software" in lowered:
        return "exim"
    if (
        "delivery has failed to these recipients" in lowered
        or "your message to" in lowered
        and ("couldn't be delivered" in lowered)
    ):
        return "exchange"
    if (
        "delivery status notification" in subject
        or "address not found" in lowered
        or ("wasn't delivered to" in lowered)
    ):
        return "gmail"
    if any(
        word in subject
        for word in ("undeliverable", "undelivered mail", "delivery failure", "mail delivery failed")
    ) or any(word in subject for word in ("returned mail", "delivery status notification", "failure notice")):
        return "generic"
    return None


def parse(message: Message, text: str) -> tuple[str, list[TextRecipient]] | None:
    """The format and its recipients, or ``None`` when this is not a recognised bounce."""
    fmt = detect(message, text)
    if fmt is None:
        return None
    report = _report_section(text)
    exclude = {
        addr.lower() for _n, addr in getaddresses([str(message.get("From", "")), str(message.get("To", ""))])
    }
    if fmt in ("postfix", "qmail"):
        rcpts = _ordered(_ANGLE_RCPT.findall(report), exclude)
    elif fmt == "exim":
        header = str(message.get("X-Failed-Recipients", ""))
        rcpts = _ordered([a for _n, a in getaddresses([header]) if "@" in a], exclude)
        if not rcpts:
            rcpts = _ordered(_LINE_RCPT.findall(report), exclude)
    elif fmt == "exchange":
        marker = report.lower().find("diagnostic information for administrators")
        if marker >= 0:
            report = report[marker:]
        rcpts = _ordered(_EXCHANGE_LINE.findall(report), exclude)
    else:
        rcpts = _ordered(
            re.findall(
                rf"(?i)(?:delivered to|failed permanently:|been delayed:|recipients?:)\s+<?({_ADDRESS})",
                report,
            )
            + _LINE_RCPT.findall(report),
            exclude,
        )
    if not rcpts:
        found = re.findall(_ADDRESS, report)
        rcpts = _ordered(found, exclude)[:1]
    if not rcpts:
        return None
    delayed = any(marker in (report + str(message.get("Subject", ""))).lower() for marker in _DELAY_MARKERS)
    return fmt, [_recipient(report, rcpts, r, delayed) for r in rcpts]


def _ordered(found: list[str], exclude: set[str]) -> list[str]:
    seen: dict[str, str] = {}
    for addr in found:
        key = addr.lower()
        if key not in exclude and key not in seen:
            seen[key] = addr
    return list(seen.values())


def _recipient(report: str, rcpts: list[str], rcpt: str, delayed: bool) -> TextRecipient:
    """The diagnostic is the text from this recipient up to the next one (or the section end)."""
    lowered = report.lower()
    start = lowered.find(rcpt.lower())
    end = len(report)
    for other in rcpts:
        if other.lower() == rcpt.lower():
            continue
        index = lowered.find(other.lower(), start + len(rcpt))
        if 0 <= index < end:
            end = index
    chunk = report[start + len(rcpt) : end] if start >= 0 else ""
    # The recipient's paragraph only: MTAs follow it with boilerplate ("No action is required…").
    chunk = re.split(r"\n[ \t]*\n", chunk.lstrip(" \t>:\n"), maxsplit=1)[0]
    chunk = re.sub(r"\s+", " ", chunk).strip(" <>:\t")
    if not _ENHANCED.search(chunk) and not re.search(r"\b[45]\d\d\b", chunk):
        # Gmail and Exchange put the server's words in a paragraph of their own.
        tail = re.search(
            r"(?is)(?:response from the remote server was:|the response was:|remote server returned)"
            r"\s*(.+?)(?:\n\s*\n|$)",
            report,
        )
        if tail:
            chunk = (chunk + " " + re.sub(r"\s+", " ", tail.group(1))).strip()
    match = _ENHANCED.search(chunk)
    status = ".".join(match.groups()) if match else None
    return TextRecipient(recipient=rcpt, diagnostic=chunk[:1000] or None, status=status, delayed=delayed)
