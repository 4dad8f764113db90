"""Header rules for outgoing mail: the extra-header deny-list, injection checks, subject
prefixes and the In-Reply-To/References chain (RFC 5322 §3.6.4)."""

from __future__ import annotations

import re

from mailport.errors import InputError

# Headers mailport writes itself, or that only servers may add: a caller setting them would
# forge the sender, break threading or the MIME structure, or leak Bcc.
DENIED_HEADERS = frozenset(
    name.lower()
    for name in (
        "From",
        "Sender",
        "To",
        "Cc",
        "Bcc",
        "Reply-To",
        "Subject",
        "Message-ID",
        "Date",
        "MIME-Version",
        "In-Reply-To",
        "References",
        "Received",
        "Return-Path",
        "DKIM-Signature",
        "ARC-Seal",
        "ARC-Message-Signature",
        "ARC-Authentication-Results",
        "Authentication-Results",
        "Delivered-To",
        "Resent-From",
        "Resent-Sender",
        "Resent-To",
        "Resent-Cc",
        "Resent-Bcc",
        "Resent-Date",
        "Resent-Message-ID",
        "Content-Transfer-Encoding",
    )
)
_FIELD_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext: printable ASCII except ':'
MAX_HEADER_VALUE = 998 * 4
MAX_REFERENCES = 20

# Reply/forward prefixes that are collapsed so replies never stack: English (Re, Fwd, Fw),
# German (AW, WG), Nordic (Sv, Vs, Vb, Fs), Dutch (Antw, Doorst), French (Réf, Tr, TR),
# Spanish/Portuguese/Italian (RE, RV, ENC, R, I), plus numbered forms "Re[2]:" / "Re^2:".
_PREFIX = re.compile(
    r"^\s*(?:(?:re|aw|sv|vs|vb|antw|r[ée]f|r|fwd?|wg|fs|doorst|tr|rv|enc|i)"
    r"(?:\s*\[\d+\]|\^\d+)?\s*[:：]\s*)+",
    re.IGNORECASE,
)


def check_extra_headers(headers: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """Validate caller-supplied headers; refuses denied names and CR/LF injection."""
    out: list[tuple[str, str]] = []
    for name, value in headers:
        if not _FIELD_NAME.fullmatch(name):
            raise InputError(f"Header name {name!r} is not a valid field name.")
        if name.lower() in DENIED_HEADERS or name.lower().startswith("content-"):
            raise InputError(f"Header {name!r} cannot be set; mailport writes it or only servers may.")
        check_value(name, value)
        out.append((name, value))
    return out


def check_value(name: str, value: str) -> None:
    """Refuse a header value that would inject another header (CR, LF or NUL)."""
    if any(ch in value for ch in "\r\n\0"):
        raise InputError(f"Header {name!r} contains a line break or NUL (header injection).")
    if len(value) > MAX_HEADER_VALUE:
        raise InputError(f"Header {name!r} is longer than {MAX_HEADER_VALUE} characters.")


def strip_prefixes(subject: str) -> str:
    """The subject without any leading reply/forward prefixes."""
    return _PREFIX.sub("", subject, count=1).strip()


def reply_subject(subject: str) -> str:
    return "Re: " + strip_prefixes(subject) if subject.strip() else "Re:"


def forward_subject(subject: str) -> str:
    return "Fwd: " + strip_prefixes(subject) if subject.strip() else "Fwd:"


def reply_references(
    parent_id: str | None, parent_references: tuple[str, ...], parent_in_reply_to: str | None
) -> tuple[str, ...]:
    """References for a reply (RFC 5322 §3.6.4): the parent's References, or its In-Reply-To
    when it has none, then the parent's id; capped at ``MAX_REFERENCES``, keeping the first
    (thread root) and the most recent ids."""
    chain = list(parent_references) or ([parent_in_reply_to] if parent_in_reply_to else [])
    if parent_id:
        chain.append(parent_id)
    unique = list(dict.fromkeys(chain))  # an id listed twice would only lengthen the header
    if len(unique) > MAX_REFERENCES:
        unique = unique[:1] + unique[-(MAX_REFERENCES - 1) :]
    return tuple(unique)
