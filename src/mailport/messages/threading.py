"""The thread key: one stable string shared by every message of a conversation.

Rule: the **root** of the conversation is the first id of ``References`` (RFC 5322 §3.6.4: a
reply's References are its parent's References followed by the parent's Message-ID, so the
first id is the thread's first message; clients that shorten References keep the first id);
without References, the first id of ``In-Reply-To``; without either, the message's own
``Message-ID``; without any id, the SHA-256 of the raw message (a thread of its own). The key
is ``sha256(root)`` in hex, cut to 32 characters: fixed length, URL- and index-safe.

This is the JWZ algorithm's first step only (no subject matching, no re-parenting): it is
stateless, so any worker can compute it for one message, and a host that wants full
threading has ``message_id``, ``in_reply_to`` and ``references`` in the payload.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def thread_root(
    *, message_id: str | None, in_reply_to: Sequence[str], references: Sequence[str], content_sha256: str
) -> str:
    """The id the conversation is keyed on (see the module docstring for the rule)."""
    if references:
        return references[0]
    if in_reply_to:
        return in_reply_to[0]
    if message_id:
        return message_id
    return f"sha256:{content_sha256}"


def thread_key(
    *, message_id: str | None, in_reply_to: Sequence[str], references: Sequence[str], content_sha256: str
) -> str:
    """``sha256(thread_root(...))`` in hex, 32 characters."""
    root = thread_root(
        message_id=message_id, in_reply_to=in_reply_to, references=references, content_sha256=content_sha256
    )
    return hashlib.sha256(root.encode("utf-8", "surrogatepass")).hexdigest()[:32]
