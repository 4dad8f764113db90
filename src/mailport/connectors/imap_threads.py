"""A conversation over IMAP: every message whose thread goes back to one root Message-ID, across
the inbox, the ``sent`` folder and the ``all`` folder where there is one, oldest first.

The thread key's rule (:mod:`mailport.messages.threading`) makes the root the first id of a
message's References; a server finds the conversation by header search:

1. ``UID SEARCH OR OR HEADER Message-ID <root> HEADER References <root> HEADER In-Reply-To
   <root>`` — the root and every reply whose mail program kept References.
2. Every Message-ID found is searched for the same way in every folder: a reply in the inbox to
   a message in Sent, and one whose mail program kept only In-Reply-To. The selected folder is
   searched while ids wait for it, then the next: on a 10,000-message folder a SELECT costs
   ten times a search (measured on the test bed's Dovecot: ~600 ms against ~50 ms).
3. Where the server offers ``THREAD=REFS`` or ``THREAD=REFERENCES`` (RFC 5256), a folder's
   threads since a day before what its first search found are asked once, and messages sharing
   a thread with a found one become candidates (replies to a mid-thread message of the same
   folder, found without another search). REFERENCES also merges threads by subject, so a
   candidate is kept only when its own thread root, In-Reply-To or Message-ID is one of the
   conversation's.

The cost is bounded whatever the folders hold: at most :data:`MAX_SEARCHES` searches of
:data:`IDS_PER_SEARCH` ids each (and as many SELECTs at worst), one THREAD per folder, and
summaries of :data:`MAX_MESSAGES` messages at most.

Gmail (``X-GM-EXT-1``) knows its conversations: the root (or any reply to it) is found in All
Mail, its ``X-GM-THRID`` fetched, and ``UID SEARCH X-GM-THRID <id>`` gives the whole thread,
inbox and sent mail alike, in one folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from mailport.connectors import imap_mail
from mailport.connectors.folders import Role, role_of
from mailport.connectors.imap_search import SEARCH_TIMEOUT, _Keys, imap_day, open_folder, run_search
from mailport.connectors.mail import MessageSummary
from mailport.errors import CommandError
from mailport.imap.arguments import Arg

if TYPE_CHECKING:
    from mailport.connectors.imap import ImapConnector

MAX_SEARCHES = 12  # header searches one thread may cost, over every folder
IDS_PER_SEARCH = 10  # Message-IDs per SEARCH (three header keys each)
MAX_IDS = 100  # Message-IDs of one conversation searched for at most
MAX_MESSAGES = 500  # a longer conversation is cut to its oldest messages
THREAD_WINDOW = 20_000  # folders with more messages are not asked for THREAD (its answer is one line)

_EPOCH = datetime.min.replace(tzinfo=UTC)


async def thread_folders(connector: ImapConnector) -> list[tuple[Role, str]]:
    """The inbox, the ``sent`` folder and the ``all`` folder (each when there is one), in that order."""
    client = connector._require()
    namespaces = await client.namespace()
    prefix = namespaces.personal[0].prefix if namespaces.personal else ""
    paths: dict[Role, str] = {Role.INBOX: "INBOX"}
    for entry in await client.list_mailboxes():
        if not entry.selectable:
            continue
        role = role_of(entry.name, delimiter=entry.delimiter, flags=entry.flags, prefix=prefix)
        if role in (Role.SENT, Role.ALL) and role not in paths:
            paths[role] = entry.name
    return [(role, paths[role]) for role in (Role.INBOX, Role.SENT, Role.ALL) if role in paths]


def bare(message_id: str) -> str:
    """A Message-ID as payloads carry it: without its angle brackets."""
    value = message_id.strip()
    return value[1:-1] if value.startswith("<") and value.endswith(">") else value


def referring_keys(ids: Sequence[str], *, own: bool = True) -> tuple[list[Arg], str | None]:
    """``OR … HEADER In-Reply-To <id> HEADER References <id>`` over ``ids`` (and ``HEADER
    Message-ID <id>`` with ``own``); the charset when an id is not ASCII (RFC 6532). HEADER
    matches substrings, so each id is searched with its angle brackets (``<1@x>`` is no part
    of ``<11@x>``)."""
    keys = _Keys()
    terms: list[list[Arg]] = []
    for value in ids:
        headers = ("Message-ID", "References", "In-Reply-To") if own else ("References", "In-Reply-To")
        for header in headers:
            terms.append([b"HEADER", header.encode(), keys.text("root", f"<{bare(value)}>")])
    args: list[Arg] = [b"OR"] * (len(terms) - 1)
    for term in terms:
        args += term
    return args, "UTF-8" if keys.utf8 else None


def _members(summary: MessageSummary, known: set[str]) -> bool:
    """Is ``summary`` part of the conversation whose (bare) Message-IDs are ``known``?"""
    envelope = summary.envelope
    return any(
        value and bare(value) in known
        for value in (summary.thread_root, envelope.in_reply_to, envelope.message_id)
    )


def _oldest_first(summary: MessageSummary) -> tuple[datetime, datetime]:
    return (summary.envelope.date or summary.received_at or _EPOCH, summary.received_at or _EPOCH)


async def thread_messages(connector: ImapConnector, root: str) -> list[MessageSummary]:
    """Every message of the conversation whose root Message-ID is ``root``, oldest first."""
    client = connector._require()
    folders = await thread_folders(connector)
    all_mail = next((path for role, path in folders if role is Role.ALL), None)
    if client.has("X-GM-EXT-1") and all_mail is not None:
        from mailport.connectors.imap_gmail import gmail_thread

        return await gmail_thread(connector, all_mail, root)
    return await _by_headers(connector, [path for _, path in folders], root)


async def _by_headers(connector: ImapConnector, folders: Sequence[str], root: str) -> list[MessageSummary]:
    """The conversation by header search, folder by folder: each Message-ID learnt is searched
    for in every folder once; the selected folder is searched while it has ids waiting (on a
    large folder SELECT costs more than a search), then the next."""
    summaries = imap_mail.summaries
    client = connector._require()
    algorithm = next((a for a in ("REFS", "REFERENCES") if client.has(f"THREAD={a}")), None)
    found: dict[str, dict[int, MessageSummary]] = {folder: {} for folder in folders}
    known: set[str] = {bare(root)}
    waiting: dict[str, list[str]] = {folder: [bare(root)] for folder in folders}
    threaded: set[str] = set()
    current = connector.selection.mailbox if connector.selection is not None else None

    def keep(summary: MessageSummary, have: dict[int, MessageSummary]) -> None:
        have[int(summary.ref.item)] = summary
        message_id = bare(summary.envelope.message_id or "")
        if message_id and message_id not in known and len(known) < MAX_IDS:
            known.add(message_id)
            for ids in waiting.values():
                ids.append(message_id)

    for _ in range(MAX_SEARCHES):
        ready = [folder for folder in folders if waiting[folder]]
        if not ready:
            break
        folder = current if current in ready else ready[0]
        current = folder
        batch, waiting[folder] = waiting[folder][:IDS_PER_SEARCH], waiting[folder][IDS_PER_SEARCH:]
        uidvalidity, exists = await open_folder(connector, folder)
        have = found[folder]
        keys, charset = referring_keys(batch)
        new = set(await run_search(connector, folder, keys, charset=charset)) - have.keys()
        room = max(MAX_MESSAGES - sum(map(len, found.values())), 0)
        fresh = await summaries(connector, folder, uidvalidity, sorted(new)[:room])
        for summary in fresh:
            keep(summary, have)
        if algorithm is None or folder in threaded or not fresh or exists > THREAD_WINDOW:
            continue
        threaded.add(folder)  # once per folder, around what its first search found
        mates = await _thread_mates(connector, algorithm, fresh) - have.keys()
        room = max(MAX_MESSAGES - sum(map(len, found.values())), 0)
        for summary in await summaries(connector, folder, uidvalidity, sorted(mates)[:room]):
            if _members(summary, known):  # not put in the thread by its subject only
                keep(summary, have)
    return _merge(found, folders)


async def _thread_mates(
    connector: ImapConnector, algorithm: str, found: Sequence[MessageSummary]
) -> set[int]:
    """The UIDs that share a server-side thread (RFC 5256) with a found message, among the
    messages since a day before the earliest found (so the answer stays small); none when the
    server refuses."""
    dates = [s.received_at for s in found if s.received_at is not None]
    keys: list[Arg] = [f"SINCE {imap_day(min(dates) - timedelta(days=1))}".encode()] if dates else [b"ALL"]
    try:
        threads = await connector._require().uid_thread(keys, algorithm=algorithm, timeout=SEARCH_TIMEOUT)
    except CommandError:
        return set()
    uids = {int(s.ref.item) for s in found}
    return {uid for members in threads if uids.intersection(members) for uid in members}


def _merge(found: dict[str, dict[int, MessageSummary]], folders: Sequence[str]) -> list[MessageSummary]:
    """One list, oldest first; a message in several folders (the inbox and an All Mail folder)
    once, from the first folder that holds it."""
    seen: set[str] = set()
    out: list[MessageSummary] = []
    for folder in folders:
        for uid in sorted(found[folder]):
            summary = found[folder][uid]
            message_id = bare(summary.envelope.message_id or "")
            if message_id and summary.folder != folders[0] and message_id in seen:
                continue
            if message_id:
                seen.add(message_id)
            out.append(summary)
    return sorted(out, key=_oldest_first)[:MAX_MESSAGES]
