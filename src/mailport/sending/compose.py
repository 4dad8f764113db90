"""Draft or raw bytes -> :class:`Composed` (RFC 5322 bytes without Bcc, plus the envelope).

Built with the stdlib ``email`` package (``policy.SMTP``: CRLF, RFC 2047 for non-ASCII names
and subjects; ``policy.SMTPUTF8`` only when an address's local part is non-ASCII, which needs
a server offering SMTPUTF8). The raw form is edited at the byte level so a caller's message is
sent as written: only Bcc is removed and a missing Message-ID/Date added.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses

from mailport.errors import InputError, InvalidEmailError
from mailport.messages.headers import decode_words, msg_ids
from mailport.messages.model import Address
from mailport.sending.draft import Composed, Draft
from mailport.sending.headers import check_extra_headers, check_value
from mailport.sending.html_text import html_to_text
from mailport.validation import parse_email

_CONTENT_ID = re.compile(r"[!-;=?-~]{1,250}")  # printable ASCII without < and >


def compose(draft: Draft, *, now: datetime | None = None) -> Composed:
    """The message's bytes and envelope; raises :class:`InputError` on unusable input."""
    _check_address(draft.from_)
    for addr in (*draft.to, *draft.cc, *draft.bcc, *draft.reply_to):
        _check_address(addr)
    recipients = envelope_recipients(a.email for a in (*draft.to, *draft.cc, *draft.bcc))
    if not recipients:
        raise InputError("The message has no recipient (to, cc or bcc).")
    check_value("Subject", draft.subject)
    for att in draft.attachments:
        check_value("attachment filename", att.filename)
        if att.content_id is not None and not _CONTENT_ID.fullmatch(att.content_id):
            raise InputError(
                f"Content-ID {att.content_id!r} must be written without <>, spaces or line breaks."
            )
    extra = check_extra_headers(draft.headers)
    utf8 = any(
        not a.email.split("@", 1)[0].isascii() for a in (draft.from_, *draft.to, *draft.cc, *draft.reply_to)
    )
    msg = EmailMessage(policy=policy.SMTPUTF8 if utf8 else policy.SMTP)
    domain = _idna(draft.from_.email.rsplit("@", 1)[1])
    message_id = new_message_id(domain)
    msg["From"] = _header_address(draft.from_)
    if draft.to:
        msg["To"] = [_header_address(a) for a in draft.to]
    if draft.cc:
        msg["Cc"] = [_header_address(a) for a in draft.cc]
    if draft.reply_to:
        msg["Reply-To"] = [_header_address(a) for a in draft.reply_to]
    msg["Subject"] = draft.subject
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = f"<{message_id}>"
    if draft.in_reply_to:
        msg["In-Reply-To"] = f"<{draft.in_reply_to}>"
    if draft.references:
        msg["References"] = " ".join(f"<{i}>" for i in draft.references)
    for name, value in extra:
        msg[name] = value
    _set_body(msg, draft)
    for part in msg.walk():
        if part is not msg:
            del part["MIME-Version"]  # the stdlib adds it to parts it creates; only the top needs it
    if "MIME-Version" not in msg:
        msg["MIME-Version"] = "1.0"
    raw = msg.as_bytes()
    return Composed(
        raw=raw,
        recipients=recipients,
        message_id=message_id,
        sender=draft.from_.email,
        eight_bit=not raw.isascii(),
        smtputf8=utf8 or not draft.from_.email.isascii() or not all(r.isascii() for r in recipients),
    )


def new_message_id(domain: str) -> str:
    """A unique id on the sender's domain (random, so it leaks neither host nor process)."""
    return f"{secrets.token_hex(12)}.{int(time.time())}@{domain}"


def _set_body(msg: EmailMessage, draft: Draft) -> None:
    text = draft.text
    if text is None and draft.html is not None:
        text = html_to_text(draft.html)
    msg.set_content(text or "", cte=_cte(text or ""))
    inline = [a for a in draft.attachments if a.content_id]
    if draft.html is not None:
        msg.add_alternative(draft.html, subtype="html", cte=_cte(draft.html))
        html_part = list(msg.iter_parts())[-1]
        for att in inline:
            maintype, subtype = _split_type(att.content_type)
            html_part.add_related(
                att.data,
                maintype,
                subtype,
                cid=f"<{att.content_id}>",
                filename=att.filename,
                disposition="inline",
            )
    for att in draft.attachments:
        if att.content_id and draft.html is not None:
            continue
        maintype, subtype = _split_type(att.content_type)
        msg.add_attachment(att.data, maintype, subtype, filename=att.filename)
    if draft.forward_raw is not None:
        original = BytesParser(policy=policy.default).parsebytes(draft.forward_raw)
        msg.add_attachment(original, disposition="attachment", filename=_forward_name(original))


def _forward_name(original: EmailMessage) -> str:
    subject = str(original.get("Subject", "") or "forwarded message")
    name = re.sub(r"[\\/:*?\"<>|\x00-\x1f]", "_", subject).strip()[:80] or "forwarded message"
    return name + ".eml"


def _cte(text: str) -> str:
    """quoted-printable for mostly-ASCII text, base64 otherwise (keeps lines under 998)."""
    non_ascii = sum(1 for ch in text if ord(ch) > 127)
    return "base64" if non_ascii > len(text) // 4 else "quoted-printable"


def _split_type(content_type: str) -> tuple[str, str]:
    maintype, _, subtype = content_type.partition("/")
    if not maintype or not subtype or not re.fullmatch(r"[\w.+-]+", maintype + subtype):
        raise InputError(f"Attachment content type {content_type!r} is not type/subtype.")
    return maintype.lower(), subtype.lower()


def _check_address(addr: Address) -> None:
    """The project's one address rule (:func:`mailport.validation.parse_email`), naming the address."""
    try:
        parse_email(addr.email)
    except InvalidEmailError as exc:
        raise InvalidEmailError(f"{addr.email!r} is not an email address ({exc.message}).") from None
    check_value("address name", addr.name)


def _idna(domain: str) -> str:
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InputError(f"Domain {domain!r} cannot be encoded (IDNA).") from exc


def _header_address(addr: Address) -> HeaderAddress:
    local, _, domain = addr.email.rpartition("@")
    if local.isascii():
        domain = _idna(domain)
    return HeaderAddress(display_name=addr.name, username=local, domain=domain)


def envelope_recipients(emails: Iterable[str]) -> tuple[str, ...]:
    """Addresses in order, without duplicates; the domain compares case-insensitively (the
    local part is case-sensitive per RFC 5321, so ``Bob@x`` and ``bob@x`` both stay)."""
    seen: set[str] = set()
    out: list[str] = []
    for email in emails:
        local, _, domain = email.strip().rpartition("@")
        key = f"{local}@{domain.lower()}"
        if local and key not in seen:
            seen.add(key)
            out.append(email.strip())
    return tuple(out)


# -- the raw form

_FIELD_START = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.MULTILINE)


def prepare_raw(raw: bytes, *, now: datetime | None = None) -> Composed:
    """Caller-written RFC 5322 bytes -> bytes to send (Bcc removed, Message-ID/Date added when
    missing, line endings CRLF) and the envelope from To/Cc/Bcc. Refuses bytes without From or
    without any recipient."""
    data = re.sub(rb"\r?\n", b"\r\n", raw.lstrip(b"\r\n"))
    end = data.find(b"\r\n\r\n")
    head, body = (
        (data, b"\r\n") if end < 0 else (data[: end + 2], data[end + 2 :])
    )  # headers only: add the blank line
    fields = _split_fields(head)
    if not fields or not _FIELD_START.match(fields[0]):
        raise InputError("The raw message does not start with a header block.")
    values: dict[str, list[str]] = {}
    kept: list[bytes] = []
    for field in fields:
        match = _FIELD_START.match(field)
        if match is None:
            raise InputError("The raw message's header block has a line that is not a header.")
        name = match.group(1).decode("ascii").lower()
        value = field[match.end() :].decode("utf-8", "replace")
        values.setdefault(name, []).append(re.sub(r"\r\n([ \t])", r"\1", value).strip())
        if name != "bcc":
            kept.append(field if field.endswith(b"\r\n") else field + b"\r\n")
    senders = _addresses(values.get("from", []))
    if not senders:
        raise InputError("The raw message has no From address.")
    recipients = envelope_recipients(
        _addresses([*values.get("to", []), *values.get("cc", []), *values.get("bcc", [])])
    )
    if not recipients:
        raise InputError("The raw message has no recipient (To, Cc or Bcc).")
    ids = msg_ids(values["message-id"][0]) if "message-id" in values else []
    if ids:
        message_id = ids[0]
    else:
        message_id = new_message_id(_idna(senders[0].rpartition("@")[2]))
        kept.append(f"Message-ID: <{message_id}>\r\n".encode("ascii"))
    if "date" not in values:
        kept.append(f"Date: {format_datetime(now or datetime.now(UTC))}\r\n".encode("ascii"))
    out = b"".join(kept) + body
    return Composed(
        raw=out,
        recipients=recipients,
        message_id=message_id,
        sender=senders[0],
        eight_bit=not out.isascii(),
        smtputf8=not head.isascii() or not senders[0].isascii() or not all(r.isascii() for r in recipients),
    )


def _split_fields(head: bytes) -> list[bytes]:
    fields: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def _addresses(values: list[str]) -> list[str]:
    decoded = [decode_words(v)[0] for v in values]
    return [email for _, email in getaddresses(decoded) if "@" in email]
