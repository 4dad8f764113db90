"""``GET …/messages/{ref}``'s view of a fetched message: parsed, its HTML sanitized (inline
images pointed at the attachment URLs), kept or left out as asked; an oversized message from
its headers only."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

from mailport.connectors.base import RemoteMessage
from mailport.mailboxes.message_view import HtmlMode, message_view

AT = datetime(2024, 2, 5, 9, 30, tzinfo=UTC)


def newsletter() -> bytes:
    msg = EmailMessage()
    msg["From"] = "News <news@example.test>"
    msg["Subject"] = "Hello"
    msg["Message-ID"] = "<n1@example.test>"
    msg.set_content("text")
    msg.add_alternative(
        '<p>Hi<script>x()</script></p><img src="cid:logo@example.test"><img src="https://t.example/p.gif">',
        subtype="html",
    )
    msg.get_payload()[1].add_related(b"\x89PNG", "image", "png", cid="<logo@example.test>")
    return msg.as_bytes()


def view(remote: RemoteMessage, html: HtmlMode = HtmlMode.SANITIZED, **options: object) -> dict[str, object]:
    return message_view(
        remote, ref="ref_x", mailbox_id="mbx_1", folder="INBOX", html=html,
        attachment_url=lambda n: f"https://mp.example/a/{n}", **options,  # type: ignore[arg-type]
    ).to_dict()  # fmt: skip


def test_the_html_is_sanitized_with_inline_images_pointed_at_their_urls() -> None:
    raw = newsletter()
    remote = RemoteMessage("1", len(raw), flags=("seen",), received_at=AT, raw=raw, labels=("Inbox",))
    shown = view(remote)
    assert shown["html"] == '<p>Hi</p><img src="https://mp.example/a/0"><img>\n'
    assert shown["remote_images_blocked"] == 1
    assert (shown["ref"], shown["flags"], shown["labels"], shown["received_at"]) == (
        "ref_x",
        ["seen"],
        ["Inbox"],
        AT,
    )
    assert shown["subject"] == "Hello" and shown["message_id"] == "n1@example.test"
    allowed = view(remote, remote_images=True, links_in_new_tab=True)
    assert 'src="https://t.example/p.gif"' in str(allowed["html"]) and allowed["remote_images_blocked"] == 0
    assert "<script>x()</script>" in str(view(remote, HtmlMode.ORIGINAL)["html"])
    assert view(remote, HtmlMode.NONE)["html"] is None
    assert view(remote, "none")["html"] is None  # type: ignore[arg-type]


def test_an_oversized_message_is_shown_from_its_headers() -> None:
    raw = newsletter()
    head = raw[: raw.index(b"\n\n") + 2]
    remote = RemoteMessage("1", 30_000_000, headers=head, oversized=True)
    shown = view(remote)
    assert shown["truncated"] is True and shown["size"] == 30_000_000
    assert shown["subject"] == "Hello" and shown["html"] is None and shown["attachments"] == []
