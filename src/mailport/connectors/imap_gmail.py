"""Gmail's IMAP extensions (``X-GM-EXT-1``): labels, conversation ids and Gmail's own search.

* ``X-GM-LABELS`` — a message's labels (``\\Inbox``, ``\\Important``, ``Work/Clients``): the
  listing's summaries fetch them into ``labels`` (:func:`mailport.connectors.imap_mail.summaries`;
  names in modified UTF-7, decoded like folder names), and flag changes set them.
* ``X-GM-THRID`` — Gmail's conversation id: a thread is the root (or a reply to it) found in
  All Mail, its id fetched, and ``UID SEARCH X-GM-THRID <id>`` there, which holds received and
  sent mail alike (:func:`gmail_thread`).
* ``X-GM-RAW`` — Gmail's search syntax inside IMAP SEARCH. ``native`` is IMAP search keys, so on
  Gmail ``X-GM-RAW "has:attachment larger:5M"`` is a valid ``native``;
  ``has_attachment`` is answered with it too (:func:`~mailport.connectors.imap_search.compile_search`).

See https://developers.google.com/gmail/imap/imap-extensions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailport.connectors import imap_mail
from mailport.connectors.imap_search import open_folder, run_search
from mailport.connectors.imap_threads import MAX_MESSAGES, referring_keys
from mailport.connectors.mail import MessageSummary
from mailport.imap.parser import as_int

if TYPE_CHECKING:
    from mailport.connectors.imap import ImapConnector


async def gmail_thread(connector: ImapConnector, all_mail: str, root: str) -> list[MessageSummary]:
    """The conversation of ``root`` by Gmail's thread id, from All Mail, oldest first; [] when
    neither the root nor a reply to it is there."""
    from mailport.connectors.imap_threads import _oldest_first

    client = connector._require()
    uidvalidity, _ = await open_folder(connector, all_mail)
    keys, charset = referring_keys([root])
    hits = await run_search(connector, all_mail, keys, charset=charset)
    if not hits:
        return []
    fetched = await client.fetch_attributes([hits[0]], ["X-GM-THRID"])
    thread_ids = [as_int(attrs[b"X-GM-THRID"]) for attrs in fetched if b"X-GM-THRID" in attrs]
    if not thread_ids:
        return []  # expunged meanwhile
    uids = await run_search(connector, all_mail, [b"X-GM-THRID %d" % thread_ids[0]])
    found = await imap_mail.summaries(connector, all_mail, uidvalidity, uids[:MAX_MESSAGES])
    return sorted(found, key=_oldest_first)
