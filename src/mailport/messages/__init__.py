"""Message parsing and normalization: raw RFC 5322 bytes -> the ``message.received`` payload.

Public API: :func:`parse_message`, :func:`parse_headers_only`, :func:`attachment_content`, and
the dataclasses :class:`Message`, :class:`Address`, :class:`Attachment`. See ``docs/messages.md``.
"""

from mailport.messages.model import Address, Attachment, Message
from mailport.messages.parse import attachment_content, parse_headers_only, parse_message

__all__ = ["Address", "Attachment", "Message", "attachment_content", "parse_headers_only", "parse_message"]
