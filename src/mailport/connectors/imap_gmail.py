"""Gmail's IMAP extensions (``X-GM-EXT-1``): labels, conversation ids and Gmail's own search.

* ``X-GM-LABELS`` — a message's labels (``\\Inbox``, ``\\Important``, ``Work/Clients``), fetched
  beside the listing's summaries into ``labels``. Label names travel in modified UTF-7 like
  folder names, and are decoded the same way.
* ``X-GM-THRID`` — Gmail's conversation id: a thread is the root (or a reply to it) found in
  All Mail, its id fetched, and ``UID SEARCH X-GM-THRID <id>`` there, which holds received and
  sent mail alike (:func:`gmail_thread`).
* ``X-GM-RAW`` — Gmail's search syntax inside IMAP SEARCH. ``native`` is IMAP search keys, so on
  Gmail ``X-GM-RAW "has:attachment larger:5M"`` is a valid ``native``;
  ``has_attachment`` is answered with it too (:func:`~mailport.connectors.imap_search.compile_search`).

See https://developers.google.com/gmail/imap/imap-extensions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mailport.connectors.imap_search import open_folder, run_search
from mailport.connectors.imap_threads import MAX_MESSAGES, referring_keys
from mailport.connectors.mail import MessageSummary
from mailport.errors import ProtocolError
from mailport.imap import utf7
from mailport.imap.client import ImapClient
from mailport.imap.parser import as_int, as_list

if TYPE_CHECKING:
    from mailport.connectors.imap import ImapConnector

EXTENSION = "X-GM-EXT-1"


def offered(client: ImapClient) -> bool:
    return client.has(EXTENSION)


def labels_of(value: object) -> tuple[str, ...]:
    """An ``X-GM-LABELS`` value (``(\\Inbox "Work/Clients" &AMk-t&AOk-)``) as label names."""
    labels: list[str] = []
    for item in as_list(value):
        if not isinstance(item, bytes):
            raise ProtocolError(f"malformed X-GM-LABELS item {item!r}")
        labels.append(item.decode("utf-8", "replace") if item.startswith(b"\\") else utf7.decode(item))
    return tuple(labels)


async def fetch_labels(client: ImapClient, uids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """UID -> labels of the selected folder's messages ``uids`` (one FETCH)."""
    if not uids:
        return {}
    fetched = await client.fetch_attributes_by_uid(list(uids), ["X-GM-LABELS"])
    return {uid: labels_of(attrs.get(b"X-GM-LABELS")) for uid, attrs in fetched.items()}


async def gmail_thread(connector: ImapConnector, all_mail: str, root: str) -> list[MessageSummary]:
    """The conversation of ``root`` by Gmail's thread id, from All Mail, oldest first; [] when
    neither the root nor a reply to it is there."""
    from mailport.connectors.imap_mail import summaries
    from mailport.connectors.imap_threads import _oldest_first

    client = connector._require()
    uidvalidity, _ = await open_folder(connector, all_mail)
    keys, charset = referring_keys([root])
    hits = await run_search(connector, all_mail, keys, charset=charset)
    if not hits:
        return []
    fetched = await client.fetch_attributes_by_uid([hits[0]], ["X-GM-THRID"])
    attrs = fetched.get(hits[0])
    if attrs is None or b"X-GM-THRID" not in attrs:
        return []  # expunged meanwhile
    thread_id = as_int(attrs[b"X-GM-THRID"])
    uids = await run_search(connector, all_mail, [b"X-GM-THRID %d" % thread_id])
    found: list[MessageSummary] = await summaries(connector, all_mail, uidvalidity, uids[:MAX_MESSAGES])
    return sorted(found, key=_oldest_first)
