"""The composed bytes read by the stdlib's strict ``policy.default`` parser: no defects, and the
same content — a second reader besides mailport's own parser."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from mailport.messages import Address, parse_message
from mailport.sending import Draft, OutgoingAttachment, compose, forward_draft, reply_draft

FROM = Address("Zoë Support", "support@example.org")


def _read(raw: bytes) -> EmailMessage:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    for part in msg.walk():
        assert part.defects == [], part.defects
    return msg


def test_full_message_has_no_defects_and_reads_the_same() -> None:
    draft = Draft(
        from_=FROM,
        to=(Address("Jürgen, Müller", "jm@example.net"),),
        cc=(Address("", "cc@example.net"),),
        bcc=(Address("Hidden", "hidden@example.net"),),
        reply_to=(Address("Desk", "desk@example.org"),),
        subject="Grüße — " + "x" * 120,
        html='<p>Hallo <b>Jürgen</b></p><img src="cid:logo@x">',
        attachments=(
            OutgoingAttachment("logo.png", "image/png", b"\x89PNG" * 100, content_id="logo@x"),
            OutgoingAttachment("Überweisung.pdf", "application/pdf", b"%PDF" + bytes(range(256)) * 10),
        ),
        headers=(("X-Ticket", "T-1"),),
    )
    out = compose(draft)
    msg = _read(out.raw)
    assert msg["Bcc"] is None
    assert str(msg["Subject"]) == draft.subject
    assert msg["To"].addresses[0].display_name == "Jürgen, Müller"
    assert msg["From"].addresses[0].display_name == "Zoë Support"
    assert msg["Message-ID"] == f"<{out.message_id}>"
    assert msg["X-Ticket"] == "T-1"
    body = msg.get_body(("plain",))
    assert body is not None and body.get_content().replace("\r\n", "\n") == "Hallo Jürgen\n"
    html = msg.get_body(("html",))
    assert html is not None and "Jürgen" in html.get_content()
    names = [part.get_filename() for part in msg.iter_attachments()]
    assert names == ["Überweisung.pdf"]
    ours = parse_message(out.raw, mailbox_id="m", folder="Sent")
    assert sorted(a.filename or "" for a in ours.attachments) == ["logo.png", "Überweisung.pdf"]


def test_reply_and_forward_have_no_defects() -> None:
    raw = (
        b"From: Alice <alice@example.net>\r\nTo: support@example.org\r\nSubject: Help\r\n"
        b"Message-ID: <a1@example.net>\r\nReferences: <a0@example.net>\r\n\r\nPlease help\r\n"
    )
    original = parse_message(raw, mailbox_id="m", folder="INBOX")
    reply = _read(compose(reply_draft(original, from_=FROM, html="<p>Sure</p>", quote=True)).raw)
    assert reply["In-Reply-To"] == "<a1@example.net>"
    assert reply["References"] == "<a0@example.net> <a1@example.net>"
    forward = _read(compose(forward_draft(original, from_=FROM, to=(Address("", "b@example.org"),))).raw)
    attached = next(forward.iter_attachments())
    assert attached.get_content_type() == "message/rfc822"
    inner = attached.get_content()
    assert inner["Message-ID"] == "<a1@example.net>"
