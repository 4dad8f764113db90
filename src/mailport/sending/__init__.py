"""Composing outgoing mail: structured drafts, replies and forwards, and raw messages -> RFC 5322
bytes plus the SMTP envelope. Pure functions, no I/O: the outbox and SMTP layers call these.

Public API: :class:`Draft`, :class:`OutgoingAttachment`, :class:`Composed`, :func:`compose`,
:func:`prepare_raw`, :func:`reply_draft`, :func:`forward_draft`, :func:`html_to_text`.
"""

from mailport.sending.compose import compose, prepare_raw
from mailport.sending.draft import Composed, Draft, OutgoingAttachment
from mailport.sending.html_text import html_to_text
from mailport.sending.reply import forward_draft, reply_draft

__all__ = [
    "Composed",
    "Draft",
    "OutgoingAttachment",
    "compose",
    "forward_draft",
    "html_to_text",
    "prepare_raw",
    "reply_draft",
]
