"""A conversation over IMAP: every message whose thread goes back to one root Message-ID, across
the inbox, the ``sent`` folder and the ``all`` folder where there is one, oldest first.

The thread key's rule (:mod:`mailport.messages.threading`) makes the root the first id of a
message's References; a server finds the conversation by header search:

1. In each folder, ``UID SEARCH OR OR HEADER Message-ID <root> HEADER References <root>
   HEADER In-Reply-To <root>`` — the root and every reply whose client kept References.
2. Where the server offers ``THREAD=REFS`` or ``THREAD=REFERENCES`` (RFC 5256), the folder's
   threads since the earliest message found are asked once, and the members of the threads
   that hold a found message become candidates: replies that reference only a mid-thread
   message of the same folder. REFERENCES also merges threads by subject, so a candidate is
   kept only when its own thread root or In-Reply-To is a message of the conversation.
3. The Message-IDs found are searched for in turn (In-Reply-To, References) in every folder,
   for at most :data:`MAX_ROUNDS` rounds and :data:`IDS_PER_ROUND` ids a round: replies in the
   inbox to a message in Sent, and the other way round.

The cost is bounded whatever the folders hold: at most ``MAX_ROUNDS x folders x
(IDS_PER_ROUND / IDS_PER_SEARCH)`` searches (each one command answered from the server's index
and cache), one THREAD per folder, and summaries of :data:`MAX_MESSAGES` messages at most.

Gmail (``X-GM-EXT-1``) knows its conversations: the root (or any reply to it) is found in All
Mail, its ``X-GM-THRID`` fetched, and ``UID SEARCH X-GM-THRID <id>`` gives the whole thread,
inbox and sent mail alike, in one folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from mailport.connectors.folders import Role, role_of
from mailport.connectors.imap_search import SEARCH_TIMEOUT, _Keys, imap_day, open_folder, run_search
from mailport.connectors.mail import MessageSummary
from mailport.errors import CommandError
from mailport.imap.arguments import Arg

if TYPE_CHECKING:
    from mailport.connectors.imap import ImapConnector

MAX_ROUNDS = 3
IDS_PER_SEARCH = 10  # Message-IDs per SEARCH (three header keys each)
IDS_PER_ROUND = 50
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
    from mailport.connectors.imap_mail import summaries

    client = connector._require()
    algorithm = next((a for a in ("REFS", "REFERENCES") if client.has(f"THREAD={a}")), None)
    found: dict[str, dict[int, MessageSummary]] = {folder: {} for folder in folders}
    known: set[str] = {bare(root)}
    frontier = [bare(root)]
    discovered: list[str] = []

    def keep(summary: MessageSummary, have: dict[int, MessageSummary]) -> None:
        have[int(summary.ref.item)] = summary
        message_id = bare(summary.envelope.message_id or "")
        if message_id and message_id not in known:
            known.add(message_id)
            discovered.append(message_id)

    for round_ in range(MAX_ROUNDS):
        if not frontier:
            break
        for folder in folders:
            uidvalidity, exists = await open_folder(connector, folder)
            have = found[folder]
            new: set[int] = set()
            for start in range(0, len(frontier), IDS_PER_SEARCH):
                keys, charset = referring_keys(frontier[start : start + IDS_PER_SEARCH], own=round_ == 0)
                new.update(await run_search(connector, folder, keys, charset=charset))
            room = MAX_MESSAGES - sum(map(len, found.values()))
            new_summaries = await summaries(connector, folder, uidvalidity, sorted(new - have.keys())[:room])
            for summary in new_summaries:
                keep(summary, have)
            if algorithm is None or round_ or not new_summaries or exists > THREAD_WINDOW:
                continue
            mates = await _thread_mates(connector, algorithm, new_summaries) - have.keys()
            room = MAX_MESSAGES - sum(map(len, found.values()))
            for summary in await summaries(connector, folder, uidvalidity, sorted(mates)[:room]):
                if _members(summary, known):  # not put in the thread by its subject only
                    keep(summary, have)
        frontier = discovered[:IDS_PER_ROUND]
        discovered.clear()
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
