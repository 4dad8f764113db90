"""Reply, reply-all and forward from a parsed original, read back with mailport's parser."""

from __future__ import annotations

from mailport.messages import Address, Message, parse_message
from mailport.sending import compose, forward_draft, reply_draft

ME = Address("Support", "support@example.org")
ALIAS = "help@example.org"


def _original(
    extra: str = "", body: str = "Where is my order?\nThanks\n", subject: str = "Order 42"
) -> Message:
    raw = (
        "From: Alice Ärger <alice@example.net>\r\n"
        "To: Support <support@example.org>, Dave <dave@example.net>, help@EXAMPLE.org\r\n"
        "Cc: Carol <carol@example.com>, SUPPORT@example.org\r\n"
        f"Subject: {subject}\r\n"
        "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
        "Message-ID: <orig-3@example.net>\r\n"
        f"{extra}"
        "\r\n"
        f"{body}"
    ).encode()
    return parse_message(raw, mailbox_id="m", folder="INBOX")


def _parse(raw: bytes) -> Message:
    return parse_message(raw, mailbox_id="m", folder="Sent")


def test_reply_goes_to_from_with_threading_headers() -> None:
    original = _original(
        "References: <orig-1@example.net> <orig-2@example.net>\r\nIn-Reply-To: <orig-2@example.net>\r\n"
    )
    draft = reply_draft(original, from_=ME, own_addresses=[ALIAS], text="It shipped.")
    assert draft.to == (Address("Alice Ärger", "alice@example.net"),)
    assert draft.cc == ()
    msg = _parse(compose(draft).raw)
    assert msg.subject == "Re: Order 42"
    assert msg.in_reply_to == "orig-3@example.net"
    assert msg.references == ("orig-1@example.net", "orig-2@example.net", "orig-3@example.net")
    assert msg.thread_key == original.thread_key  # mailport threads the reply with its parent


def test_reply_uses_in_reply_to_when_the_parent_has_no_references() -> None:
    draft = reply_draft(_original("In-Reply-To: <orig-2@example.net>\r\n"), from_=ME, text="x")
    assert draft.references == ("orig-2@example.net", "orig-3@example.net")
    assert draft.in_reply_to == "orig-3@example.net"


def test_a_chain_of_replies_keeps_growing_references() -> None:
    msg = _original()
    for i in range(4):
        me = ME if i % 2 == 0 else Address("Alice", "alice@example.net")
        draft = reply_draft(msg, from_=me, text=f"reply {i}")
        msg = _parse(compose(draft).raw)
        assert msg.subject == "Re: Order 42"
    assert len(msg.references) == 4  # the original and the three replies before the last
    assert msg.references[0] == "orig-3@example.net"


def test_reply_prefers_reply_to() -> None:
    draft = reply_draft(_original("Reply-To: Tickets <tickets@example.net>\r\n"), from_=ME, text="x")
    assert draft.to == (Address("Tickets", "tickets@example.net"),)


def test_reply_all_adds_to_and_cc_without_own_addresses() -> None:
    draft = reply_draft(_original(), from_=ME, own_addresses=[ALIAS], reply_all=True, text="x")
    assert [a.email for a in draft.to] == ["alice@example.net", "dave@example.net"]
    assert [a.email for a in draft.cc] == ["carol@example.com"]
    out = compose(draft)
    assert out.recipients == ("alice@example.net", "dave@example.net", "carol@example.com")


def test_reply_to_own_sent_message_goes_to_its_recipients() -> None:
    raw = (
        b"From: Support <support@example.org>\r\nTo: Alice <alice@example.net>\r\n"
        b"Subject: Re: Order 42\r\nMessage-ID: <s1@example.org>\r\n\r\nhello\r\n"
    )
    draft = reply_draft(_parse(raw), from_=ME, text="follow-up")
    assert draft.to == (Address("Alice", "alice@example.net"),)
    assert draft.subject == "Re: Order 42"


def test_reply_subject_is_normalized() -> None:
    draft = reply_draft(_original(subject="AW: RE: Re: Order 42"), from_=ME, text="x")
    assert draft.subject == "Re: Order 42"


def test_quoted_text_reply() -> None:
    draft = reply_draft(_original(), from_=ME, text="It shipped.", quote=True)
    assert draft.text == (
        "It shipped.\n\nOn Mon, 02 Mar 2026 at 10:00 UTC, Alice Ärger <alice@example.net> wrote:\n"
        "> Where is my order?\n> Thanks\n"
    )
    assert draft.html is None


def test_quoted_html_reply_escapes_the_original() -> None:
    original = _original(body="<script>alert(1)</script> & more\n")
    draft = reply_draft(original, from_=ME, html="<p>Answer</p>", quote=True)
    assert draft.html is not None
    assert "<blockquote" in draft.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in draft.html
    assert "<script>" not in draft.html
    msg = _parse(compose(draft).raw)
    assert msg.text is not None
    assert "> <script>alert(1)</script> & more" in msg.text  # generated text quotes with "> "
    assert msg.text.startswith("Answer\n")


def test_quote_of_an_html_only_original() -> None:
    raw = (
        b"From: a@example.net\r\nTo: support@example.org\r\nSubject: Hi\r\nMessage-ID: <h@x>\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Line &amp; one</p><p>two</p>"
    )
    draft = reply_draft(_parse(raw), from_=ME, text="ok", quote=True)
    assert draft.text == "ok\n\na@example.net wrote:\n> Line & one\n>\n> two\n"


def test_forward_attaches_the_original_as_rfc822() -> None:
    original = _original()
    draft = forward_draft(original, from_=ME, to=(Address("Boss", "boss@example.org"),), text="FYI")
    out = compose(draft)
    assert b"Content-Type: message/rfc822" in out.raw
    msg = _parse(out.raw)
    assert msg.subject == "Fwd: Order 42"
    assert msg.text is not None and msg.text.strip() == "FYI"
    assert msg.in_reply_to is None
    assert [a.content_type for a in msg.attachments] == ["message/rfc822"]
    assert msg.attachments[0].filename == "Order 42.eml"
    assert b"Message-ID: <orig-3@example.net>" in out.raw
    assert b"Where is my order?" in out.raw


def test_forward_inline() -> None:
    draft = forward_draft(
        _original(subject="Fwd: Order 42"),
        from_=ME,
        to=(Address("", "boss@example.org"),),
        text="FYI",
        inline=True,
    )
    assert draft.subject == "Fwd: Order 42"
    assert draft.forward_raw is None
    assert draft.text is not None
    assert draft.text.startswith(
        "FYI\n\n---------- Forwarded message ---------\nFrom: Alice Ärger <alice@example.net>\n"
    )
    assert "Subject: Fwd: Order 42\n" in draft.text
    assert draft.text.endswith("Where is my order?\nThanks\n")
    msg = _parse(compose(draft).raw)
    assert msg.attachments == ()


def test_forward_inline_html_is_escaped() -> None:
    draft = forward_draft(
        _original(body="<b>x</b>\n"),
        from_=ME,
        to=(Address("", "boss@example.org"),),
        html="<p>FYI</p>",
        inline=True,
    )
    assert draft.html is not None and "&lt;b&gt;x&lt;/b&gt;" in draft.html
    assert draft.text is None


def test_reply_to_a_message_without_message_id() -> None:
    raw = (
        b"From: a@example.net\r\nTo: support@example.org\r\nSubject: Hi\r\n"
        b"References: <r1@x>\r\n\r\nhello\r\n"
    )
    draft = reply_draft(_parse(raw), from_=ME, text="x")
    assert draft.in_reply_to is None
    assert draft.references == ("r1@x",)
    msg = _parse(compose(draft).raw)
    assert msg.in_reply_to is None
    assert msg.references == ("r1@x",)


def test_reply_all_to_a_message_with_no_other_recipients() -> None:
    raw = (
        b"From: a@example.net\r\nTo: support@example.org\r\nSubject: Hi\r\nMessage-ID: <m@x>\r\n\r\nhello\r\n"
    )
    draft = reply_draft(_parse(raw), from_=ME, reply_all=True, text="x")
    assert [a.email for a in draft.to] == ["a@example.net"]
    assert draft.cc == ()
