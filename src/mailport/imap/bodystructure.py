"""BODYSTRUCTURE (RFC 3501 7.4.2, RFC 9051 7.5.2) as a tree, and whether it has attachments.

Pure functions over the nested values :func:`mailport.imap.parser.parse_values` gives, so a
listing can say "has attachments" from the server's index without reading any body.

What counts as an attachment (:func:`has_attachments`), walking the tree depth first:

* a part with ``Content-Disposition: attachment`` — always;
* a forwarded message (``message/rfc822``, ``message/global``) — always, not descended into;
* a ``text/*`` part only when it has a file name (``filename``/``name``): otherwise it is a
  body or an alternative of one (text/plain, text/html, text/calendar of an invitation);
* any other leaf (image, PDF, octet-stream …), inline or not — except
  - the parts after the first of a ``multipart/related`` without a file name (the images and
    styles an HTML body embeds by ``cid:``: part of the body, not attachments), and
  - the signature of a ``multipart/signed`` (``application/pgp-signature``,
    ``application/(x-)pkcs7-signature``) and both parts of a ``multipart/encrypted`` (its
    control part and the ciphertext, which says nothing about what is inside).

This is what mail clients show a paper clip for. It differs on purpose from
``Message.attachments`` of a parsed message, which lists every non-body part (inline images
included) so that each can be downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailport.messages.headers import decode_words

_SIGNATURES = frozenset(
    {"application/pgp-signature", "application/pkcs7-signature", "application/x-pkcs7-signature"}
)
_FORWARDED = frozenset({"message/rfc822", "message/global"})


@dataclass(frozen=True, slots=True)
class BodyPart:
    """One node: ``type``/``subtype`` lower-cased; ``parts`` for a multipart (and the enclosed
    message of a message/rfc822); parameters with lower-cased names."""

    type: str
    subtype: str
    params: dict[str, str] = field(default_factory=dict)
    disposition: str | None = None
    disposition_params: dict[str, str] = field(default_factory=dict)
    size: int | None = None
    parts: tuple[BodyPart, ...] = ()

    @property
    def content_type(self) -> str:
        return f"{self.type}/{self.subtype}"

    @property
    def filename(self) -> str | None:
        return self.disposition_params.get("filename") or self.params.get("name")


def parse_bodystructure(value: object) -> BodyPart:
    """The values of a ``BODYSTRUCTURE`` (or ``BODY``) FETCH item as a :class:`BodyPart` tree.
    Tolerant: what is missing or malformed is left empty rather than raising."""
    if not isinstance(value, list) or not value:
        return BodyPart("application", "octet-stream")
    if isinstance(value[0], list):  # multipart: the children, then the subtype and extensions
        children: list[BodyPart] = []
        index = 0
        while index < len(value) and isinstance(value[index], list):
            children.append(parse_bodystructure(value[index]))
            index += 1
        subtype = _text(value[index]) if index < len(value) else "mixed"
        ext = value[index + 1 :]
        disposition, disposition_params = _disposition(ext[1] if len(ext) > 1 else None)
        return BodyPart(
            "multipart",
            subtype or "mixed",
            _params(ext[0] if ext else None),
            disposition,
            disposition_params,
            parts=tuple(children),
        )
    kind = _text(value[0]) or "application"
    subtype = _text(value[1] if len(value) > 1 else None) or "octet-stream"
    size = value[6] if len(value) > 6 else None
    # basic fields: type subtype params id description encoding size (7), then per type
    extra = 7
    enclosed: tuple[BodyPart, ...] = ()
    if kind == "text":
        extra = 8  # + lines
    elif f"{kind}/{subtype}" in _FORWARDED and len(value) > 8:
        enclosed = (parse_bodystructure(value[8]),)
        extra = 10  # + envelope, body, lines
    ext = value[extra:]
    disposition, disposition_params = _disposition(ext[1] if len(ext) > 1 else None)  # after md5
    return BodyPart(
        kind,
        subtype,
        _params(value[2] if len(value) > 2 else None),
        disposition,
        disposition_params,
        int(size) if isinstance(size, bytes) and size.isdigit() else None,
        enclosed,
    )


def has_attachments(part: BodyPart) -> bool:
    """Whether the message has an attachment, by the rules of the module docstring."""
    return _attached(part, parent=None, position=0)


def _attached(part: BodyPart, *, parent: BodyPart | None, position: int) -> bool:
    if part.disposition == "attachment":
        return True
    if part.type == "multipart":
        if part.subtype == "encrypted":
            return False
        return any(_attached(child, parent=part, position=n) for n, child in enumerate(part.parts))
    if part.content_type in _FORWARDED:
        return True
    if part.type == "text":
        return part.filename is not None
    if parent is not None and parent.subtype == "related" and position > 0 and part.filename is None:
        return False
    if parent is not None and parent.subtype == "signed" and part.content_type in _SIGNATURES:
        return False
    return True


def _text(value: object) -> str:
    return value.decode("utf-8", "replace").lower() if isinstance(value, bytes) else ""


def _params(value: object) -> dict[str, str]:
    """``("charset" "utf-8" "name" "x.pdf")`` -> {"charset": "utf-8", "name": "x.pdf"}, values
    RFC 2047/2231-decoded as far as the server left them encoded."""
    if not isinstance(value, list):
        return {}
    out: dict[str, str] = {}
    for i in range(0, len(value) - 1, 2):
        key, raw = value[i], value[i + 1]
        if isinstance(key, bytes) and isinstance(raw, bytes):
            name = key.decode("ascii", "replace").lower().rstrip("*")
            text = raw.decode("utf-8", "replace")
            out.setdefault(name, decode_words(text)[0] if "=?" in text else text)
    return out


def _disposition(value: object) -> tuple[str | None, dict[str, str]]:
    if not isinstance(value, list) or not value or not isinstance(value[0], bytes):
        return None, {}
    return value[0].decode("ascii", "replace").lower(), _params(value[1] if len(value) > 1 else None)
