"""A fetched message as ``GET …/messages/{ref}`` shows it: parsed like a ``message.received``
payload, with where it is (``ref``), its flags and labels, and its HTML sanitized for embedding
unless the caller asks for the original (or for none).

Pure (no I/O) so the API, the CLI and the web page show the same thing, and so the parsing of a
large message can run in a worker thread.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailport.connectors.base import RemoteMessage
from mailport.errors import InputError
from mailport.messages import Message, parse_headers_only, parse_message
from mailport.messages.sanitize import content_id, sanitize_html


class HtmlMode(enum.StrEnum):
    SANITIZED = "sanitized"  # safe to embed (mailport.messages.sanitize)
    ORIGINAL = "original"  # as the sender wrote it: never put it in a page as it is
    NONE = "none"  # no HTML at all (smaller answers for text-only clients)


@dataclass(frozen=True, slots=True)
class MessageView:
    ref: str
    message: Message
    html: str | None
    remote_images_blocked: int
    labels: tuple[str, ...]
    received_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """The ``message.received`` payload's shape, plus ``ref``, ``labels``, ``received_at``
        and ``remote_images_blocked``; ``html`` as asked."""
        return {
            "ref": self.ref,
            **self.message.to_dict(),
            "html": self.html,
            "remote_images_blocked": self.remote_images_blocked,
            "labels": list(self.labels),
            "received_at": self.received_at,
        }


def message_view(
    remote: RemoteMessage,
    *,
    ref: str,
    mailbox_id: str,
    folder: str,
    html: HtmlMode | str = HtmlMode.SANITIZED,
    remote_images: bool = False,
    attachment_url: Callable[[int], str] | None = None,
    links_in_new_tab: bool = False,
) -> MessageView:
    """Parse ``remote`` (headers only when it was over the size limit) and prepare its HTML.

    ``attachment_url(n)`` is where attachment ``n`` is served: a ``cid:`` image of the HTML
    becomes that URL so that inline images display.
    """
    try:
        html = HtmlMode(html)  # "sanitized" from a CLI flag or a form works too
    except ValueError:
        raise InputError(f"html must be one of {', '.join(HtmlMode)}", field="html") from None
    if remote.raw is not None:
        message = parse_message(
            remote.raw, mailbox_id=mailbox_id, folder=folder, flags=remote.flags, size=remote.size
        )
    else:
        message = parse_headers_only(
            remote.headers or b"", remote.size, mailbox_id=mailbox_id, folder=folder, flags=remote.flags
        )
    shown, blocked = message.html, 0
    if html is HtmlMode.NONE:
        shown = None
    elif html is HtmlMode.SANITIZED and message.html is not None:
        inline = {}
        if attachment_url is not None:
            inline = {
                content_id(part.content_id): attachment_url(part.index)
                for part in message.attachments
                if part.content_id
            }
        safe = sanitize_html(
            message.html, inline_images=inline, remote_images=remote_images, links_in_new_tab=links_in_new_tab
        )
        shown, blocked = safe.html, safe.remote_images_blocked
    return MessageView(ref, message, shown, blocked, remote.labels, remote.received_at)
