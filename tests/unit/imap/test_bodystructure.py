"""BODYSTRUCTURE responses (as Dovecot and Gmail write them) -> the tree and ``has_attachments``."""

from __future__ import annotations

import pytest

from mailport.imap.bodystructure import has_attachments, parse_bodystructure
from mailport.imap.parser import Response, parse_values


def structure(text: bytes) -> object:
    return parse_values(Response([text], []))[0]


PLAIN = b'("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 12 1 NIL NIL NIL NIL)'
HTML = b'("text" "html" ("charset" "utf-8") NIL NIL "quoted-printable" 40 2 NIL NIL NIL NIL)'
ALTERNATIVE = b"(" + PLAIN + HTML + b' "alternative" ("boundary" "b1") NIL NIL NIL)'
PDF = (
    b'("application" "pdf" ("name" "=?utf-8?q?Rechnung_M=C3=A4rz.pdf?=") NIL NIL "base64" 1200 NIL '
    b'("attachment" ("filename" "=?utf-8?q?Rechnung_M=C3=A4rz.pdf?=")) NIL NIL)'
)
INLINE_IMAGE = b'("image" "png" NIL "<logo@x>" NIL "base64" 300 NIL ("inline" NIL) NIL NIL)'
FORWARDED = (
    b'("message" "rfc822" NIL NIL NIL "7bit" 500 (NIL "fwd" NIL NIL NIL NIL NIL NIL NIL NIL) '
    + PLAIN
    + b" 20 NIL NIL NIL NIL)"
)


def test_a_mixed_message_with_a_pdf_has_an_attachment_with_its_decoded_name() -> None:
    tree = parse_bodystructure(
        structure(b"(" + ALTERNATIVE + PDF + b' "mixed" ("boundary" "b0") NIL NIL NIL)')
    )
    assert tree.content_type == "multipart/mixed" and len(tree.parts) == 2
    alternative, pdf = tree.parts
    assert [p.content_type for p in alternative.parts] == ["text/plain", "text/html"]
    assert pdf.disposition == "attachment" and pdf.filename == "Rechnung März.pdf" and pdf.size == 1200
    assert has_attachments(tree)


@pytest.mark.parametrize(
    "body",
    [
        PLAIN,
        ALTERNATIVE,
        # an HTML body with the image it embeds by cid:
        b"(" + HTML + INLINE_IMAGE + b' "related" ("type" "text/html") NIL NIL)',
        # a signed message: the signature is no attachment
        b"("
        + PLAIN
        + b'("application" "pgp-signature" ("name" "signature.asc") NIL NIL "7bit" 300 NIL NIL NIL NIL)'
        + b' "signed" ("protocol" "application/pgp-signature") NIL NIL)',
        # an invitation's text/calendar alternative
        b"(" + PLAIN + b'("text" "calendar" ("method" "REQUEST") NIL NIL "7bit" 90 4 NIL NIL NIL NIL)'
        b' "alternative" NIL NIL NIL)',
        b'(("application" "pgp-encrypted" NIL NIL NIL "7bit" 10 NIL NIL NIL NIL)'
        b'("application" "octet-stream" ("name" "encrypted.asc") NIL NIL "7bit" 900 NIL ("inline" NIL)'
        b" NIL NIL)"
        b' "encrypted" NIL NIL NIL)',
    ],
    ids=["plain", "alternative", "related", "signed", "calendar", "encrypted"],
)
def test_bodies_and_their_parts_are_no_attachments(body: bytes) -> None:
    assert not has_attachments(parse_bodystructure(structure(body)))


@pytest.mark.parametrize(
    "part",
    [
        PDF,
        INLINE_IMAGE,  # an image in a mixed message (a photo sent inline) is shown with a clip
        FORWARDED,
        b'("text" "plain" ("name" "notes.txt") NIL NIL "7bit" 12 1 NIL'
        b' ("inline" ("filename" "notes.txt")) NIL NIL)',
        b'("text" "html" NIL NIL NIL "7bit" 12 1 NIL ("attachment" NIL) NIL NIL)',
    ],
    ids=["pdf", "inline-image", "forwarded", "named-text", "html-attachment"],
)
def test_files_in_a_mixed_message_are_attachments(part: bytes) -> None:
    tree = parse_bodystructure(structure(b"(" + PLAIN + part + b' "mixed" NIL NIL NIL)'))
    assert has_attachments(tree)


def test_a_forwarded_message_keeps_its_enclosed_structure_and_junk_is_tolerated() -> None:
    forwarded = parse_bodystructure(structure(FORWARDED))
    assert forwarded.content_type == "message/rfc822"
    assert [p.content_type for p in forwarded.parts] == ["text/plain"]
    assert parse_bodystructure(None).content_type == "application/octet-stream"
    assert (
        parse_bodystructure(structure(b'("TEXT" "PLAIN" NIL NIL NIL "7BIT" 1 1)')).content_type
        == "text/plain"
    )
