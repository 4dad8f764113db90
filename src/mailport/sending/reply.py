"""Reply, reply-all and forward drafts from a parsed original.

Recipients: a reply goes to Reply-To, else From; reply-all adds To and Cc; the mailbox's own
addresses are removed (when that leaves nobody, e.g. replying to one's own sent message, the
original's To is used). Threading headers per RFC 5322 §3.6.4 (:func:`reply_references`).
"""

from __future__ import annotations

import html as html_lib
from collections.abc import Iterable

from mailport.messages.model import Address, Message
from mailport.sending.draft import Draft, OutgoingAttachment
from mailport.sending.headers import forward_subject, reply_references, reply_subject
from mailport.sending.html_text import html_to_text


def reply_draft(
    original: Message,
    *,
    from_: Address,
    own_addresses: Iterable[str] = (),
    reply_all: bool = False,
    text: str | None = None,
    html: str | None = None,
    quote: bool = False,
    attachments: tuple[OutgoingAttachment, ...] = (),
    headers: tuple[tuple[str, str], ...] = (),
) -> Draft:
    """A draft answering ``original``; ``quote`` appends the original below an attribution line."""
    own = {_key(e) for e in own_addresses} | {_key(from_.email)}
    primary = [a for a in (original.reply_to or original.from_) if _key(a.email) not in own]
    if not primary:
        primary = [a for a in original.to if _key(a.email) not in own]
    to = _unique(primary, set())
    cc: list[Address] = []
    if reply_all:
        taken = own | {_key(a.email) for a in to}
        to += _unique([a for a in original.to if _key(a.email) not in own], taken)
        cc = _unique(list(original.cc), taken | {_key(a.email) for a in to})
    if quote:
        text, html = _quoted(original, text, html)
    return Draft(
        from_=from_,
        to=tuple(to),
        cc=tuple(cc),
        subject=reply_subject(original.subject),
        text=text,
        html=html,
        attachments=attachments,
        headers=headers,
        in_reply_to=original.message_id,
        references=reply_references(original.message_id, original.references, original.in_reply_to),
    )


def forward_draft(
    original: Message,
    *,
    from_: Address,
    to: tuple[Address, ...],
    cc: tuple[Address, ...] = (),
    bcc: tuple[Address, ...] = (),
    text: str | None = None,
    html: str | None = None,
    inline: bool = False,
    attachments: tuple[OutgoingAttachment, ...] = (),
    headers: tuple[tuple[str, str], ...] = (),
) -> Draft:
    """A draft forwarding ``original``: attached as ``message/rfc822`` (default, keeps it
    intact), or ``inline`` below a "Forwarded message" block."""
    forward_raw = None if inline else original.raw
    if inline:
        block = _forward_block(original)
        text = f"{text or ''}\n\n{block}".lstrip("\n") if text is not None or html is None else None
        if html is not None:
            escaped = html_lib.escape(block).replace("\n", "<br>\n")
            html = f"{html}\n<div>{escaped}</div>"
    elif text is None and html is None:
        text = ""
    return Draft(
        from_=from_,
        to=to,
        cc=cc,
        bcc=bcc,
        subject=forward_subject(original.subject),
        text=text,
        html=html,
        attachments=attachments,
        headers=headers,
        forward_raw=forward_raw or None,
    )


def attribution(original: Message) -> str:
    who = _display(original.from_[0]) if original.from_ else "someone"
    when = original.date.strftime("%a, %d %b %Y at %H:%M %Z").strip() if original.date else None
    return f"On {when}, {who} wrote:" if when else f"{who} wrote:"


def _quoted(original: Message, text: str | None, html: str | None) -> tuple[str | None, str | None]:
    body = original.text if original.text is not None else html_to_text(original.html or "")
    line = attribution(original)
    if text is not None or html is None:
        quoted = "\n".join("> " + q if q else ">" for q in body.rstrip("\n").split("\n"))
        text = f"{text or ''}\n\n{line}\n{quoted}\n".lstrip("\n")
    if html is not None:
        escaped = html_lib.escape(body.rstrip("\n")).replace("\n", "<br>\n")
        html = (
            f"{html}\n<div>{html_lib.escape(line)}</div>\n"
            f'<blockquote type="cite" style="margin:0 0 0 .8ex;border-left:1px solid #ccc;padding-left:1ex">'
            f"{escaped}</blockquote>"
        )
    return text, html


def _forward_block(original: Message) -> str:
    lines = ["---------- Forwarded message ---------"]
    if original.from_:
        lines.append("From: " + ", ".join(_display(a) for a in original.from_))
    if original.date_raw:
        lines.append("Date: " + original.date_raw)
    lines.append("Subject: " + original.subject)
    if original.to:
        lines.append("To: " + ", ".join(_display(a) for a in original.to))
    if original.cc:
        lines.append("Cc: " + ", ".join(_display(a) for a in original.cc))
    body = original.text if original.text is not None else html_to_text(original.html or "")
    return "\n".join(lines) + "\n\n" + body


def _display(addr: Address) -> str:
    return f"{addr.name} <{addr.email}>" if addr.name else addr.email


def _key(email: str) -> str:
    local, _, domain = email.strip().rpartition("@")
    return f"{local.lower()}@{domain.lower()}"


def _unique(addresses: list[Address], taken: set[str]) -> list[Address]:
    out: list[Address] = []
    seen = set(taken)
    for a in addresses:
        if _key(a.email) not in seen:
            seen.add(_key(a.email))
            out.append(a)
    return out
