"""The fast parser decodes what the stdlib's ``policy.default`` decodes, on realistic messages.

The corpus: hand-made files in ``data/corpus`` (RFC 2047 words in ten charsets, QP and base64
bodies, multipart/alternative, RFC 2231 and RFC 2047 attachment names, inline images with
content-ids, a forwarded message, ISO-2022-JP and ks_c_5601-1987 mail, address-list oddities,
PGP/MIME-signed mail, Apple Mail text-image-text, an Outlook invitation with text/calendar),
each in LF and CRLF form, plus messages composed with ``email.message.EmailMessage`` in many
charsets.
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from pathlib import Path

import pytest

from mailport.messages import attachment_content, parse_message

CORPUS = sorted((Path(__file__).parent / "data" / "corpus").glob("*.eml"))


def _crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _nl(text: str | None) -> str | None:
    return None if text is None else text.replace("\r\n", "\n")


def _leaves(part: Message) -> list[Message]:
    """Every non-multipart part, not descending into message/* (as mailport does)."""
    if part.get_content_maintype() == "multipart":
        return [leaf for child in part.get_payload() for leaf in _leaves(child)]
    return [part]


def stdlib_view(raw: bytes) -> dict[str, object]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)

    def addrs(name: str) -> list[tuple[str, str]]:
        header = msg[name]
        return [(a.display_name, a.addr_spec) for a in header.addresses] if header is not None else []

    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    bodies = [p for p in (plain, html) if p is not None]
    attachments = []
    for leaf in _leaves(msg):
        if any(leaf is b for b in bodies):
            continue
        cid = leaf["content-id"]
        size = None if leaf.get_content_maintype() == "message" else len(leaf.get_payload(decode=True))
        attachments.append(
            {
                "filename": leaf.get_filename(),
                "content_type": leaf.get_content_type(),
                "size": size,
                "content_id": str(cid).strip().strip("<>") if cid else None,
            }
        )
    date = msg["date"].datetime if msg["date"] is not None else None
    return {
        "subject": str(msg["subject"] or ""),
        "from": addrs("from"),
        "to": addrs("to"),
        "cc": addrs("cc"),
        "reply_to": addrs("reply-to"),
        "sender": addrs("sender"),
        "date": date.astimezone(UTC) if date is not None else None,
        "message_id": str(msg["message-id"]).strip().strip("<>") if msg["message-id"] else None,
        "text": _nl(plain.get_content()) if plain is not None else None,
        "html": _nl(html.get_content()) if html is not None else None,
        "attachments": attachments,
    }


def mailport_view(raw: bytes) -> dict[str, object]:
    m = parse_message(raw, mailbox_id="mb", folder="INBOX")
    return {
        "subject": m.subject,
        "from": [(a.name, a.email) for a in m.from_],
        "to": [(a.name, a.email) for a in m.to],
        "cc": [(a.name, a.email) for a in m.cc],
        "reply_to": [(a.name, a.email) for a in m.reply_to],
        "sender": [(a.name, a.email) for a in m.sender],
        "date": m.date,
        "message_id": m.message_id,
        "text": m.text,
        "html": m.html,
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "size": None if a.content_type.startswith("message/") else a.size,
                "content_id": a.content_id,
            }
            for a in m.attachments
        ],
    }


@pytest.mark.parametrize("line_ending", ["lf", "crlf"])
@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_corpus_matches_policy_default(path: Path, line_ending: str) -> None:
    raw = path.read_bytes()
    if line_ending == "crlf":
        raw = _crlf(raw)
    expected = stdlib_view(raw)
    if path.name == "addresses.eml":
        # The one deliberate difference: an RFC 822 comment after a bare address is taken as
        # the display name (email.utils.getaddresses does this; policy.default drops it).
        assert expected["cc"][0] == ("", "dave@example.com")  # type: ignore[index]
        expected["cc"][0] = ("Dave Jones", "dave@example.com")  # type: ignore[index]
    assert mailport_view(raw) == expected
    assert parse_message(raw, mailbox_id="mb", folder="INBOX").parse_error is None


def test_corpus_is_the_one_described() -> None:
    assert len(CORPUS) >= 13
    joined = b"".join(p.read_bytes() for p in CORPUS)
    for needle in (b"?Q?", b"?B?", b"filename*0*=", b"filename*=", b"Content-ID:", b"quoted-printable"):
        assert needle in joined


CHARSETS = ["utf-8", "iso-8859-1", "iso-8859-2", "iso-8859-15", "koi8-r", "windows-1251", "shift_jis",
            "euc-jp", "gb2312", "big5", "euc-kr", "iso-8859-7", "windows-1252"]  # fmt: skip
TEXTS = {
    "utf-8": "Ünïcödé ✓ – 日本語",
    "iso-8859-1": "Café crème à la façon",
    "iso-8859-2": "Zażółć gęślą jaźń",
    "iso-8859-15": "Prix: 100 € œuvre",
    "koi8-r": "Съешь же ещё этих мягких",
    "windows-1251": "Привет, мир",
    "shift_jis": "こんにちは世界",
    "euc-jp": "東京タワー",
    "gb2312": "你好，世界",
    "big5": "繁體中文測試",
    "euc-kr": "안녕하세요 세계",
    "iso-8859-7": "Καλημέρα κόσμε",
    "windows-1252": "“Smart” quotes – dash",
}


def _composed(charset: str, cte: str, *, with_attachment: bool) -> bytes:
    msg = EmailMessage()
    text = TEXTS[charset]
    msg["From"] = f"{text[:8].replace(',', '')} <sender@example.com>"
    msg["To"] = f'"{text[:5]}, Jr." <rcpt@example.org>, plain@example.net'
    msg["Subject"] = f"{text} — {charset}"
    msg["Date"] = "Wed, 11 Mar 2026 12:34:56 +0530"
    msg["Message-ID"] = f"<{charset}.{cte}@example.com>"
    body = (text + "\n") * 40
    msg.set_content(body, charset=charset, cte=cte)
    msg.add_alternative(f"<p>{text}</p>\n", subtype="html", charset=charset, cte=cte)
    if with_attachment:
        msg.add_attachment(b"\x00\x01binary" * 100, maintype="application", subtype="octet-stream",
                           filename=f"{text[:6]}.bin")  # fmt: skip
    return msg.as_bytes(policy=email.policy.SMTP)


@pytest.mark.parametrize("charset", CHARSETS)
@pytest.mark.parametrize("cte", ["quoted-printable", "base64"])
def test_composed_messages_match_policy_default(charset: str, cte: str) -> None:
    raw = _composed(charset, cte, with_attachment=charset in ("utf-8", "iso-8859-2", "shift_jis", "big5"))
    mine = mailport_view(raw)
    assert mine == stdlib_view(raw)
    assert TEXTS[charset] in str(mine["subject"])
    assert TEXTS[charset] in str(mine["text"])


def test_attachment_content_returns_the_decoded_bytes_of_each_attachment() -> None:
    raw = (Path(__file__).parent / "data" / "corpus" / "mixed-rfc2231.eml").read_bytes()
    ref = email.message_from_bytes(raw, policy=email.policy.default)
    expected = [p.get_payload(decode=True) for p in ref.iter_attachments()]
    message = parse_message(raw, mailbox_id="mb", folder="INBOX")
    assert [a.filename for a in message.attachments] == [
        "Rechnung für März 2026 – Kopie.pdf",
        "Größen.csv",
        "Übersicht 2026.xlsx",
    ]
    for n, attachment in enumerate(message.attachments):
        meta, data = attachment_content(raw, n)
        assert meta == attachment
        assert data == expected[n]
        assert meta.size == len(data)
    assert attachment_content(raw, 0)[1].startswith(b"%PDF-1.4")
    assert [(a.section, a.disposition) for a in message.attachments] == [
        ("2", "attachment"),
        ("3", "attachment"),
        ("4", "attachment"),
    ]


def test_inline_images_keep_their_content_id_and_section() -> None:
    raw = (Path(__file__).parent / "data" / "corpus" / "related-cid.eml").read_bytes()
    m = parse_message(raw, mailbox_id="mb", folder="INBOX")
    assert [(a.content_id, a.disposition, a.section, a.filename) for a in m.attachments] == [
        ("logo.png@01D9", "inline", "2", "logo.png"),
        ("spacer@01D9", "inline", "3", None),
    ]
    assert m.text == "Plain version."
    assert m.html is not None and 'src="cid:logo.png@01D9"' in m.html and "Grüße" in m.html
    assert m.date == datetime(2026, 3, 6, 7, 0, tzinfo=UTC)
