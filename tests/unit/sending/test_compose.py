"""Structured drafts -> bytes, read back with mailport's own parser (what a recipient sees)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailport.errors import InputError
from mailport.messages import Address, attachment_content, parse_message
from mailport.sending import Draft, OutgoingAttachment, compose
from mailport.sending.compose import envelope_recipients

FROM = Address("Support", "support@example.org")
BOB = Address("Bob", "bob@example.net")


def _parse(raw: bytes):  # type: ignore[no-untyped-def]
    return parse_message(raw, mailbox_id="m", folder="INBOX")


def test_text_only_message_has_the_required_headers() -> None:
    out = compose(Draft(from_=FROM, to=(BOB,), subject="Hello", text="Hi Bob\n"))
    head = out.raw.split(b"\r\n\r\n", 1)[0].decode()
    assert "\r\nMIME-Version: 1.0" in "\r\n" + head
    assert "Date: " in head
    assert out.message_id.endswith("@example.org")
    assert f"Message-ID: <{out.message_id}>" in head
    assert b"\n" not in out.raw.replace(b"\r\n", b"")  # CRLF only
    msg = _parse(out.raw)
    assert msg.subject == "Hello"
    assert msg.text == "Hi Bob\n"
    assert msg.html is None
    assert msg.from_ == (FROM,)
    assert msg.to == (BOB,)
    assert msg.message_id == out.message_id
    assert out.recipients == ("bob@example.net",)
    assert out.sender == "support@example.org"


def test_message_ids_are_unique() -> None:
    ids = {compose(Draft(from_=FROM, to=(BOB,), text="x")).message_id for _ in range(200)}
    assert len(ids) == 200


def test_date_uses_the_given_time() -> None:
    out = compose(Draft(from_=FROM, to=(BOB,), text="x"), now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert _parse(out.raw).date == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_text_and_html_make_multipart_alternative() -> None:
    out = compose(Draft(from_=FROM, to=(BOB,), subject="s", text="plain", html="<p>rich</p>"))
    assert b"Content-Type: multipart/alternative" in out.raw
    msg = _parse(out.raw)
    assert msg.text is not None and msg.text.strip() == "plain"
    assert msg.html is not None and "<p>rich</p>" in msg.html
    assert msg.attachments == ()


def test_html_only_gets_a_generated_text_part() -> None:
    html = '<p>Your ticket &amp; reply</p><p>See <a href="https://help.example.org/t/1">the ticket</a></p>'
    msg = _parse(compose(Draft(from_=FROM, to=(BOB,), html=html)).raw)
    assert msg.text == "Your ticket & reply\n\nSee the ticket (https://help.example.org/t/1)\n"
    assert msg.html is not None and "&amp;" in msg.html


def test_non_ascii_names_subject_and_body() -> None:
    draft = Draft(
        from_=Address("Zoë Bäcker", "zoe@example.org"),
        to=(Address("Jürgen, Müller", "jm@example.net"), Address("李雷", "li@example.cn")),
        subject="Grüße aus Köln — 你好" + " long words" * 12,
        text="Schöne Grüße\n日本語のテキスト\n",
    )
    out = compose(draft)
    assert out.raw.isascii()  # RFC 2047 / transfer encodings: no 8-bit needed from the server
    msg = _parse(out.raw)
    assert msg.subject == draft.subject
    assert msg.from_ == (draft.from_,)
    assert msg.to == draft.to
    assert msg.text == draft.text


def test_idn_domain_is_encoded_in_headers() -> None:
    out = compose(Draft(from_=Address("", "info@bücher.example"), to=(BOB,), text="x"))
    assert out.message_id.endswith("@xn--bcher-kva.example")
    assert b"<info@xn--bcher-kva.example>" in out.raw or b"info@xn--bcher-kva.example" in out.raw


def test_attachments_make_multipart_mixed() -> None:
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
    draft = Draft(
        from_=FROM,
        to=(BOB,),
        text="see attached",
        attachments=(
            OutgoingAttachment("résumé 2026.pdf", "application/pdf", pdf),
            OutgoingAttachment("notes.txt", "text/plain", "naïve\n".encode()),
        ),
    )
    out = compose(draft)
    assert b"Content-Type: multipart/mixed" in out.raw
    msg = _parse(out.raw)
    assert msg.text is not None and msg.text.strip() == "see attached"
    names = [a.filename for a in msg.attachments]
    assert names == ["résumé 2026.pdf", "notes.txt"]
    assert msg.attachments[0].content_type == "application/pdf"
    assert msg.attachments[0].disposition == "attachment"
    assert attachment_content(out.raw, 0)[1] == pdf


def test_inline_image_is_related_to_the_html() -> None:
    draft = Draft(
        from_=FROM,
        to=(BOB,),
        html='<p>Logo: <img src="cid:logo@x" alt="our logo"></p>',
        attachments=(OutgoingAttachment("logo.png", "image/png", b"\x89PNG....", content_id="logo@x"),),
    )
    out = compose(draft)
    assert b"multipart/related" in out.raw
    assert b"Content-ID: <logo@x>" in out.raw
    msg = _parse(out.raw)
    assert msg.text == "Logo: our logo\n"
    assert [(a.filename, a.content_id, a.disposition) for a in msg.attachments] == [
        ("logo.png", "logo@x", "inline")
    ]


def test_bcc_is_in_the_envelope_but_never_in_the_bytes() -> None:
    hidden = Address("Hidden Person", "hidden@secret.example")
    out = compose(Draft(from_=FROM, to=(BOB,), bcc=(hidden,), text="x"))
    assert b"hidden" not in out.raw.lower()
    # no Bcc header line (the substring alone failed once: a random Message-ID spelled "bcc")
    head = out.raw.split(b"\r\n\r\n", 1)[0].lower()
    assert not any(line.startswith(b"bcc:") for line in head.split(b"\r\n"))
    assert out.recipients == ("bob@example.net", "hidden@secret.example")
    assert _parse(out.raw).bcc == ()


def test_bcc_only_message_is_allowed() -> None:
    out = compose(Draft(from_=FROM, bcc=(BOB,), text="x"))
    assert out.recipients == ("bob@example.net",)
    assert b"bob@" not in out.raw


def test_envelope_deduplicates_with_case_insensitive_domains() -> None:
    out = compose(
        Draft(
            from_=FROM,
            to=(BOB, Address("", "bob@EXAMPLE.NET")),
            cc=(Address("", "carol@example.net"), Address("Bob again", "bob@Example.Net")),
            bcc=(Address("", "carol@example.net"),),
            text="x",
        )
    )
    assert out.recipients == ("bob@example.net", "carol@example.net")


def test_local_part_stays_case_sensitive_in_the_envelope() -> None:
    assert envelope_recipients(["Bob@x.org", "bob@x.org", "bob@X.ORG"]) == ("Bob@x.org", "bob@x.org")


def test_reply_to_and_threading_headers_are_written() -> None:
    draft = Draft(
        from_=FROM,
        to=(BOB,),
        reply_to=(Address("Desk", "desk@example.org"),),
        text="x",
        in_reply_to="b@x",
        references=("a@x", "b@x"),
    )
    msg = _parse(compose(draft).raw)
    assert msg.reply_to == (Address("Desk", "desk@example.org"),)
    assert msg.in_reply_to == "b@x"
    assert msg.references == ("a@x", "b@x")


@pytest.mark.parametrize(
    "email", ["bob", "bob@", "@x.org", "bob@localhost", "bob smith@x.org", "a@b.org\r\nBcc: c@d"]
)
def test_bad_addresses_are_refused(email: str) -> None:
    with pytest.raises(InputError, match="not an email address") as info:
        compose(Draft(from_=FROM, to=(Address("", email),), text="x"))
    assert info.value.code == "invalid_email"


def test_no_recipient_is_refused() -> None:
    with pytest.raises(InputError, match="no recipient"):
        compose(Draft(from_=FROM, text="x"))


def test_subject_injection_is_refused() -> None:
    with pytest.raises(InputError, match="injection"):
        compose(Draft(from_=FROM, to=(BOB,), subject="hi\r\nBcc: evil@x.org", text="x"))


def test_display_name_injection_is_refused() -> None:
    with pytest.raises(InputError, match="injection"):
        compose(Draft(from_=Address("Eve\nBcc: x@y.org", "eve@example.org"), to=(BOB,), text="x"))


def test_bad_attachment_type_is_refused() -> None:
    with pytest.raises(InputError, match="type/subtype"):
        compose(Draft(from_=FROM, to=(BOB,), text="x", attachments=(OutgoingAttachment("a", "pdf", b"x"),)))


def test_ascii_message_needs_no_extensions() -> None:
    out = compose(Draft(from_=Address("Zoë", "zoe@example.org"), to=(BOB,), subject="Grüße", text="Grüße"))
    assert (out.eight_bit, out.smtputf8) == (False, False)


def test_non_ascii_local_part_needs_smtputf8() -> None:
    out = compose(Draft(from_=FROM, to=(Address("Jürgen", "jürgen@example.net"),), subject="Grüße", text="x"))
    assert out.smtputf8 is True
    assert out.recipients == ("jürgen@example.net",)
    msg = _parse(out.raw)
    assert msg.to == (Address("Jürgen", "jürgen@example.net"),)
    assert msg.subject == "Grüße"


def test_forwarding_an_8bit_original_is_flagged_8bit() -> None:
    raw = (
        "From: Zoë <z@example.net>\r\nTo: support@example.org\r\nSubject: Grüße\r\nMessage-ID: <o@x>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSchöne Grüße\r\n"
    ).encode()
    out = compose(Draft(from_=FROM, to=(BOB,), text="FYI", forward_raw=raw))
    assert out.eight_bit is True
    assert "Schöne Grüße".encode() in out.raw
    msg = _parse(out.raw)
    assert [(a.filename, a.content_type) for a in msg.attachments] == [("Grüße.eml", "message/rfc822")]


@pytest.mark.parametrize("cid", ["<logo>", "a b", "a\r\nX: y", "", "ünï"])
def test_bad_content_ids_are_refused(cid: str) -> None:
    att = OutgoingAttachment("logo.png", "image/png", b"x", content_id=cid)
    with pytest.raises(InputError, match="Content-ID"):
        compose(Draft(from_=FROM, to=(BOB,), html="<p>x</p>", attachments=(att,)))


def test_attachment_filename_injection_is_refused() -> None:
    att = OutgoingAttachment("a.pdf\r\nBcc: x@y.org", "application/pdf", b"x")
    with pytest.raises(InputError, match="injection"):
        compose(Draft(from_=FROM, to=(BOB,), text="x", attachments=(att,)))


def test_inline_attachment_without_html_is_a_plain_attachment() -> None:
    att = OutgoingAttachment("logo.png", "image/png", b"x", content_id="logo@x")
    msg = _parse(compose(Draft(from_=FROM, to=(BOB,), text="x", attachments=(att,))).raw)
    assert [a.filename for a in msg.attachments] == ["logo.png"]
