"""The normalized message: ids, thread key, payload shape, header-only (oversized) messages."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from mailport.messages import Message, parse_headers_only, parse_message
from mailport.messages.model import Attachment
from mailport.messages.threading import thread_key, thread_root

CORPUS = Path(__file__).parent / "data" / "corpus"
PAYLOAD_KEYS = {
    "mailbox_id", "folder", "message_id", "in_reply_to", "references", "thread_key",
    "from", "sender", "reply_to", "to", "cc", "bcc", "subject", "date", "date_raw", "text", "html",
    "attachments", "size", "flags", "headers", "sha256", "parse_error", "truncated",
}  # fmt: skip


def parse(raw: bytes) -> Message:
    return parse_message(raw, mailbox_id="mb-1", folder="INBOX", flags=["\\Seen", "$Forwarded"])


def test_payload_shape_and_json() -> None:
    raw = (CORPUS / "qp-utf8.eml").read_bytes().replace(b"\n", b"\r\n")
    m = parse(raw)
    payload = m.to_dict()
    assert set(payload) == PAYLOAD_KEYS
    assert json.loads(json.dumps(payload)) == payload
    assert payload["from"] == [{"name": "Jörg Müller", "email": "joerg@example.de"}]
    assert payload["date"] == "2026-03-03T13:00:00+00:00"
    assert payload["date_raw"] == "Tue, 3 Mar 2026 08:00:00 -0500"
    assert payload["subject"] == "Rechnung März"
    assert payload["flags"] == ["\\Seen", "$Forwarded"]
    assert payload["size"] == len(raw)
    assert payload["sha256"] == hashlib.sha256(raw).hexdigest()
    assert (payload["mailbox_id"], payload["folder"]) == ("mb-1", "INBOX")  # location: see the pipeline
    assert ["Subject", "=?utf-8?Q?Rechnung_M=C3=A4rz?="] in payload["headers"]
    assert payload["text"].startswith("Sehr geehrte Damen und Herren,\n\nanbei die Rechnung für März")
    assert payload["parse_error"] is None and payload["truncated"] is False
    assert m.raw == raw and "raw" not in payload and " raw=" not in repr(m)


def test_ids_and_thread_key_follow_the_documented_rule() -> None:
    m = parse((CORPUS / "addresses.eml").read_bytes())
    assert m.message_id == "addr.1@example.com"
    assert m.in_reply_to == "p2@example.com"
    assert m.references == ("p0@example.com", "p1@example.com", "p2@example.com")
    assert m.thread_key == hashlib.sha256(b"p0@example.com").hexdigest()[:32]
    reply = parse((CORPUS / "qp-utf8.eml").read_bytes())
    root = parse(b"Message-ID: <root.0@example.com>\r\nSubject: first\r\n\r\nhi")
    assert reply.thread_key == root.thread_key == hashlib.sha256(b"root.0@example.com").hexdigest()[:32]


def test_thread_root_precedence() -> None:
    kw = {"content_sha256": "abc"}
    assert thread_root(message_id="m", in_reply_to=["i"], references=["r0", "r1"], **kw) == "r0"
    assert thread_root(message_id="m", in_reply_to=["i"], references=[], **kw) == "i"
    assert thread_root(message_id="m", in_reply_to=[], references=[], **kw) == "m"
    assert thread_root(message_id=None, in_reply_to=[], references=[], **kw) == "sha256:abc"
    assert len(thread_key(message_id="m", in_reply_to=[], references=[], **kw)) == 32


def test_messages_without_ids_are_threads_of_their_own() -> None:
    a, b = parse(b"Subject: a\r\n\r\none"), parse(b"Subject: a\r\n\r\ntwo")
    assert a.message_id is None and a.thread_key != b.thread_key


def test_headers_only_for_oversized_messages() -> None:
    raw = (CORPUS / "mixed-rfc2231.eml").read_bytes().replace(b"\n", b"\r\n")
    head = raw[: raw.index(b"\r\n\r\n") + 4]
    m = parse_headers_only(head, 50_000_000, mailbox_id="mb-1", folder="INBOX")
    assert m.truncated is True
    assert m.size == 50_000_000
    assert m.subject == "Unterlagen" and m.message_id == "mixed.1@example.de"
    assert m.text is None and m.html is None and m.attachments == ()
    assert m.parse_error is None
    assert m.to_dict()["truncated"] is True
    # Bytes after the header block (a partial body) are ignored.
    assert parse_headers_only(raw[:2000], 9, mailbox_id="m", folder="f").attachments == ()


def test_headers_only_never_raises() -> None:
    for junk in (b"", b"\x00\xff" * 100, b"Subject: =?x?q?\r\n\r\n", b": : :\r\n"):
        m = parse_headers_only(junk, 1, mailbox_id="m", folder="f")
        assert m.truncated and json.dumps(m.to_dict())


def test_an_attachments_payload_is_every_field_in_order() -> None:
    """``Attachment.to_dict`` is written out (no ``asdict`` deep copy): a field added later must
    appear in it too."""
    attachment = Attachment(
        index=0,
        section="2",
        filename="a.pdf",
        content_type="application/pdf",
        size=3,
        content_id=None,
        disposition="attachment",
    )
    assert list(attachment.to_dict().items()) == list(dataclasses.asdict(attachment).items())
