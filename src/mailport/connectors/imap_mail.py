"""Reading and acting on any message of an IMAP mailbox: listings, one message, flags, move,
delete, import, and creating, renaming and deleting folders.

Functions over an :class:`~mailport.connectors.imap.ImapConnector` (whose methods of the same
names call them), so that the connector stays a thin translation layer and the search and
thread code can reuse :func:`summaries`.

* **Selecting.** A pooled connection serves many folders: a folder is SELECTed (EXAMINEd for
  reads) only when it is not the selected one; what SELECT said (UIDVALIDITY) is kept on the
  connector (``connector.selection``).
* **Listing items** come from one ``UID FETCH`` per page of up to :data:`FETCH_PAGE` UIDs:
  FLAGS, INTERNALDATE, RFC822.SIZE, BODYSTRUCTURE (for ``has_attachments``, see
  :mod:`mailport.imap.bodystructure`), the listing's header fields (decoded by mailport's own
  header code: encoded words, charsets, IDNA), PREVIEW (RFC 8970) where the server offers it
  (else ``preview`` is None: no second round trip for a body part) and X-GM-LABELS on Gmail.
* **Thread keys** follow :mod:`mailport.messages.threading`. A message without any
  Message-ID, In-Reply-To or References gets the SHA-256 of the header fields fetched for the
  listing as its stand-in content hash: stable for that message wherever it is listed, but not
  the key its ``message.received`` payload had (which hashes the whole source, unknown here).
* **Pages** are newest first by UID; the cursor is base64url of ``[folder, UIDVALIDITY, last
  UID of the page]``, so the next page is below that UID and mail arriving meanwhile (higher
  UIDs) neither repeats nor hides an item. UIDs are searched in windows from the top (see
  :class:`_Newest`), as ESEARCH ``RETURN (ALL)`` where offered (compact answers).
* **Flags** are neutral (``seen``, ``flagged``, ``answered``, ``draft``); ``\\Deleted`` and
  ``\\Recent`` are never shown; keywords are kept as the server spells them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from mailport.connectors.base import MessageRef, RemoteMessage
from mailport.connectors.envelope import parse_envelope
from mailport.connectors.folders import Folder, Role, display_name, role_of
from mailport.connectors.mail import (
    IMAP_SPELLING,
    MAX_LIMIT,
    FlagChange,
    ListQuery,
    MessagePage,
    MessageSummary,
    Moved,
)
from mailport.errors import (
    CommandError,
    CursorExpiredError,
    FolderExistsError,
    FolderNotFoundError,
    InputError,
    InvalidCursorError,
    MessageNotFoundError,
    TrashFolderMissingError,
    UnsupportedFeatureError,
)
from mailport.imap import utf7
from mailport.imap.arguments import uid_set
from mailport.imap.bodystructure import has_attachments, parse_bodystructure
from mailport.imap.models import ListEntry, Namespace, SelectInfo
from mailport.imap.parser import as_int, as_list, parse_internaldate

if TYPE_CHECKING:
    from mailport.connectors.imap import ImapConnector
    from mailport.imap import ImapClient

FETCH_PAGE = 500  # UIDs per summary FETCH (one round trip each)
HEADER_FIELDS = "FROM TO CC REPLY-TO SUBJECT DATE MESSAGE-ID IN-REPLY-TO REFERENCES"
SUMMARY_ITEMS = (
    "UID",
    "FLAGS",
    "INTERNALDATE",
    "RFC822.SIZE",
    "BODYSTRUCTURE",
    f"BODY.PEEK[HEADER.FIELDS ({HEADER_FIELDS})]",
)

_TO_IMAP = IMAP_SPELLING
_FROM_IMAP = {imap.lower(): str(neutral) for neutral, imap in _TO_IMAP.items()}
_HIDDEN = frozenset({"\\deleted", "\\recent"})
# RFC 3501 atom: any CHAR except atom-specials ( ) { SP CTL % * " \ ]
_KEYWORD = re.compile(r'[^(){ %*"\\\]\x00-\x1f\x7f-\uffff]+\Z')
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_HEADER_KEY = b"BODY[HEADER.FIELDS"


# ---------------------------------------------------------------------------- flags


def neutral_flags(flags: Iterable[str]) -> tuple[str, ...]:
    """IMAP flags -> neutral names (``\\Seen`` -> ``seen``); ``\\Deleted``/``\\Recent`` dropped."""
    out: list[str] = []
    for flag in flags:
        lower = flag.lower()
        if lower in _HIDDEN:
            continue
        out.append(_FROM_IMAP.get(lower, flag))
    return tuple(out)


def imap_flags(flags: Iterable[str]) -> list[str]:
    """Neutral names and keywords -> IMAP flags; :class:`InputError` for anything that is not
    a neutral name nor a valid keyword (an IMAP atom, not starting with ``\\``)."""
    out: list[str] = []
    for flag in flags:
        system = _TO_IMAP.get(flag.lower())
        if system is not None:
            out.append(system)
        elif flag and _KEYWORD.match(flag):
            out.append(flag)
        else:
            raise InputError(
                f"not a flag: {flag[:60]!r}",
                field="flags",
                hint="Use seen, flagged, answered, draft, or a keyword made of printable ASCII "
                'without spaces, parentheses, braces, %, *, ", \\ or ] (for example $Forwarded).',
            )
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------- selecting


async def select(
    connector: ImapConnector, folder: str, *, write: bool = False, fresh: bool = False
) -> SelectInfo:
    """Make ``folder`` the selected one (EXAMINE for reads, SELECT for writes) unless it is;
    :class:`FolderNotFoundError` when the server has no such folder.

    A server shows a session the mail that arrived since its last command only at the end of the
    next one (Dovecot answers a SEARCH right after a delivery without the new message), so a
    folder that stays selected is brought up to date with a NOOP when ``fresh`` (listings);
    lookups by UID retry once after a NOOP instead (:func:`_sync`)."""
    client = connector._require()
    current = connector.selection
    if (
        current is not None
        and client.selected == current.mailbox
        and _same_folder(current.mailbox, folder)
        and (not write or not current.read_only)
    ):
        if fresh:
            await client.noop()
        return current
    connector.selection = None
    try:
        info = await client.select(folder, readonly=not write)
    except CommandError as exc:
        raise _folder_error(exc, folder) from exc
    connector.selection = info
    return info


async def _sync(connector: ImapConnector) -> None:
    """Let the server report what arrived since the session's last command (see :func:`select`)."""
    await connector._require().noop()


def _same_folder(a: str, b: str) -> bool:
    return a == b or (a.upper() == "INBOX" and b.upper() == "INBOX")


def _folder_error(exc: CommandError, folder: str) -> Exception:
    """A refusal that means "no such folder" (RFC 5530 NONEXISTENT, TRYCREATE) as
    :class:`FolderNotFoundError`; anything else unchanged."""
    code = (exc.details.get("response_code") or "").upper()
    said = (exc.server_said or "").lower()
    if code in ("NONEXISTENT", "TRYCREATE") or "doesn't exist" in said or "does not exist" in said:
        return FolderNotFoundError(f"no folder {folder!r} in this mailbox", folder=folder)
    return exc


# ---------------------------------------------------------------------------- summaries


async def summaries(
    connector: ImapConnector, folder: str, uidvalidity: int, uids: Sequence[int]
) -> list[MessageSummary]:
    """Listing items for ``uids`` of ``folder`` (in the order given; UIDs that do not exist are
    left out). The folder is selected read-only when it is not the selected one; when its
    UIDVALIDITY is no longer ``uidvalidity`` none of the UIDs name a message any more: []."""
    if not uids:
        return []
    info = await select(connector, folder)
    if info.uidvalidity != uidvalidity:
        return []
    client = connector._require()
    items = list(SUMMARY_ITEMS)
    if client.has("PREVIEW"):
        items.append("PREVIEW")
    gmail = client.has("X-GM-EXT-1")
    if gmail:
        items.append("X-GM-LABELS")
    found: dict[int, MessageSummary] = {}
    for start in range(0, len(uids), FETCH_PAGE):
        page = uids[start : start + FETCH_PAGE]
        for attrs in await client.fetch_attributes(page, items):
            summary = _summary(folder, uidvalidity, attrs)
            found[int(summary.ref.item)] = summary
    connector._touch()
    return [found[uid] for uid in uids if uid in found]


def _summary(folder: str, uidvalidity: int, attrs: dict[bytes, object]) -> MessageSummary:
    uid = as_int(attrs[b"UID"])
    block = next((v for k, v in attrs.items() if k.startswith(_HEADER_KEY)), b"")
    parsed = parse_envelope(block if isinstance(block, bytes) else b"")
    structure = attrs.get(b"BODYSTRUCTURE")
    preview = attrs.get(b"PREVIEW")
    internaldate = attrs.get(b"INTERNALDATE")
    size = attrs.get(b"RFC822.SIZE")
    return MessageSummary(
        ref=MessageRef(folder, str(uidvalidity), str(uid)),
        folder=folder,
        envelope=parsed.envelope,
        flags=neutral_flags(_strings(attrs.get(b"FLAGS"))),
        labels=_labels(attrs),
        size=int(size) if isinstance(size, bytes) and size.isdigit() else 0,
        received_at=parse_internaldate(internaldate) if isinstance(internaldate, bytes) else None,
        has_attachments=has_attachments(parse_bodystructure(structure)) if structure is not None else None,
        preview=preview.decode("utf-8", "replace") if isinstance(preview, bytes) else None,
        thread_key=parsed.thread_key,
        thread_root=parsed.thread_root,
    )


def _labels(attrs: dict[bytes, object]) -> tuple[str, ...]:
    """X-GM-LABELS values (modified UTF-7, as mailbox names) decoded."""
    return tuple(utf7.decode(label.encode()) for label in _strings(attrs.get(b"X-GM-LABELS")))


def _strings(value: object) -> list[str]:
    return [v.decode("utf-8", "replace") for v in as_list(value) if isinstance(v, bytes)]


# ---------------------------------------------------------------------------- listing


def encode_cursor(folder: str, uidvalidity: int, uid: int) -> str:
    packed = json.dumps([folder, uidvalidity, uid], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(packed.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, folder: str) -> tuple[int, int]:
    """(UIDVALIDITY, last UID) of a cursor made for ``folder``; :class:`InvalidCursorError`
    for anything else (another folder's cursor included)."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (
            isinstance(parts, list)
            and len(parts) == 3
            and isinstance(parts[0], str)
            and all(isinstance(p, int) and p >= 0 for p in parts[1:])
        ):
            raise ValueError("not a listing cursor")
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursorError("the cursor is not one this API returned", field="cursor") from exc
    if not _same_folder(parts[0], folder):
        raise InvalidCursorError(
            f"the cursor belongs to folder {parts[0]!r}, not {folder!r}",
            field="cursor",
            hint="Pass the cursor with the folder it was made for, or omit it to start over.",
        )
    return parts[1], parts[2]


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be between 1 and {MAX_LIMIT}", field="limit")


def search_date(when: datetime) -> str:
    """An IMAP SEARCH date (``1-Mar-2024``), a day early: SEARCH dates ignore time and zone."""
    day = (when - timedelta(days=1)).date()
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year}"


class _Newest:
    """The UIDs matching ``criteria``, newest first, searched in UID windows from the top down:
    a window of a page's size costs the server a fraction of a SEARCH over a large folder
    (Dovecot, 10,000 messages: ~0.2 ms against ~2 ms). Each next window is four times wider;
    the fourth reaches down to UID 1."""

    def __init__(self, client: ImapClient, criteria: list[str], *, top: int | None, hint: int, span: int):
        self.client = client
        self.criteria = " ".join(criteria)
        self.high = top  # the highest UID wanted; None: whatever the newest is ("*")
        self.anchor = top if top is not None else hint  # where the first window ends, roughly
        self.span = span
        self.windows = 0
        self.buffer: list[int] = []
        self.done = False

    async def _fill(self) -> None:
        while not self.buffer and not self.done:
            end = self.high if self.high is not None else self.anchor
            low = 1 if self.windows >= 3 else max(1, end - self.span + 1)
            window = f"UID {low}:{self.high if self.high is not None else '*'} {self.criteria}"
            found = await self.client.search_uids(window.strip().encode())
            # "n:*" also matches the newest message when n is beyond it
            self.buffer = sorted((u for u in found if u >= low), reverse=True)
            self.done = low == 1
            self.high = low - 1
            self.span *= 4
            self.windows += 1

    async def take(self, count: int) -> list[int]:
        out: list[int] = []
        while len(out) < count:
            await self._fill()
            if not self.buffer:
                break
            wanted = count - len(out)
            out += self.buffer[:wanted]
            self.buffer = self.buffer[wanted:]
        return out

    async def more(self) -> bool:
        await self._fill()
        return bool(self.buffer)


def below_cursor(position: tuple[int, int], uidvalidity: int, folder: str) -> int:
    """The highest UID the page after a decoded cursor may hold (below 1: nothing is left);
    :class:`~mailport.errors.CursorExpiredError` when the folder was reset since."""
    if position[0] != uidvalidity:
        raise CursorExpiredError(
            f"folder {folder!r} was reset (UIDVALIDITY {position[0]} -> {uidvalidity})", folder=folder
        )
    return position[1] - 1


async def list_messages(connector: ImapConnector, query: ListQuery) -> MessagePage:
    """A page of ``query.folder``, newest first (see the module docstring for the cursor)."""
    check_limit(query.limit)
    position = decode_cursor(query.cursor, query.folder) if query.cursor else None
    info = await select(connector, query.folder, fresh=True)
    uidvalidity = info.uidvalidity or 0
    top: int | None = None
    if position is not None:
        top = below_cursor(position, uidvalidity, query.folder)
        if top < 1:
            return MessagePage([], None)
    criteria: list[str] = []
    if query.unseen is True:
        criteria.append("UNSEEN")
    elif query.unseen is False:
        criteria.append("SEEN")
    if query.since is not None:
        criteria.append(f"SINCE {search_date(query.since)}")
    hint = max((info.uidnext or 1) - 1, 1)
    newest = _Newest(connector._require(), criteria, top=top, hint=hint, span=query.limit + 1)
    items: list[MessageSummary] = []
    last: int | None = None
    while len(items) < query.limit:
        chunk = await newest.take(query.limit - len(items))
        if not chunk:
            break
        last = chunk[-1]
        for summary in await summaries(connector, query.folder, uidvalidity, chunk):
            if (
                query.since is not None
                and summary.received_at is not None
                and summary.received_at < query.since
            ):
                continue  # SINCE is by day; the exact instant is checked here
            items.append(summary)
    more = last is not None and await newest.more()
    return MessagePage(items, encode_cursor(query.folder, uidvalidity, last) if more and last else None)


# ---------------------------------------------------------------------------- one message


def _position(ref: MessageRef) -> tuple[int, int]:
    try:
        return int(ref.epoch), int(ref.item)
    except ValueError:
        raise MessageNotFoundError(
            "the reference does not name a message of this mailbox", ref=ref.encode()
        ) from None


async def fetch_message(connector: ImapConnector, ref: MessageRef) -> RemoteMessage:
    """The whole source (BODY.PEEK[]: never sets ``\\Seen``), or headers only with
    ``oversized`` above the size limit. Flags are neutral, as in listings."""
    uidvalidity, uid = _position(ref)
    info = await select(connector, ref.scope)
    if info.uidvalidity != uidvalidity:
        raise MessageNotFoundError(f"folder {ref.scope!r} was reset since", ref=ref.encode())
    fetched = await connector.fetch_uids(ref.scope, uidvalidity, [uid])
    if not fetched:  # perhaps delivered since this session's last command
        await _sync(connector)
        fetched = await connector.fetch_uids(ref.scope, uidvalidity, [uid])
    if not fetched:
        raise MessageNotFoundError(f"message {uid} is gone from {ref.scope!r}", ref=ref.encode())
    message = fetched[0]
    message.flags = neutral_flags(message.flags)
    client = connector._require()
    if client.has("X-GM-EXT-1"):  # not in the fast BODY[] FETCH: one more round trip, on Gmail only
        for attrs in await client.fetch_attributes([uid], ["UID", "X-GM-LABELS"]):
            message.labels = _labels(attrs)
    return message


# ---------------------------------------------------------------------------- actions


def _by_folder(refs: Sequence[MessageRef]) -> dict[str, dict[int, list[int]]]:
    """refs -> folder -> UIDVALIDITY -> UIDs."""
    groups: dict[str, dict[int, list[int]]] = {}
    for ref in refs:
        validity, uid = _position(ref)
        groups.setdefault(ref.scope, {}).setdefault(validity, []).append(uid)
    return groups


async def _present(
    connector: ImapConnector, folder: str, versions: dict[int, list[int]], *, write: bool
) -> list[int]:
    """The UIDs of ``folder`` to act on, selected for writing; :class:`MessageNotFoundError`
    (before anything changed) when any of them is gone."""
    info = await select(connector, folder, write=write)
    wanted = sorted({uid for uids in versions.values() for uid in uids})
    stale = [uid for validity, uids in versions.items() if validity != info.uidvalidity for uid in uids]
    current = versions.get(info.uidvalidity or 0, [])
    client = connector._require()
    found = set(await client.search_uids(b"UID " + uid_set(current))) if current else set()
    if len(found) < len(set(current)):  # perhaps delivered since this session's last command
        await _sync(connector)
        found = set(await client.search_uids(b"UID " + uid_set(current)))
    missing = stale + [uid for uid in current if uid not in found]
    if missing:
        refs = [
            MessageRef(folder, str(v), str(u)).encode()
            for v, us in versions.items()
            for u in us
            if u in missing
        ]
        raise MessageNotFoundError(
            f"{len(missing)} of the messages are gone from {folder!r}; nothing was changed", refs=refs
        )
    return wanted


async def update_flags(connector: ImapConnector, refs: Sequence[MessageRef], change: FlagChange) -> None:
    """Add and remove flags (and Gmail labels) on every ref, folder by folder."""
    add, remove = imap_flags(change.add), imap_flags(change.remove)
    labels = change.add_labels or change.remove_labels
    client = connector._require()
    if labels and not client.has("X-GM-EXT-1"):
        raise UnsupportedFeatureError(
            "this server has no labels (it does not offer Gmail's X-GM-EXT-1)",
            hint="Use flags or keywords (`add`/`remove`), or move the message to a folder.",
        )
    if change.empty or not refs:
        return
    for folder, versions in _by_folder(refs).items():
        uids = await _present(connector, folder, versions, write=True)
        if add:
            await client.store(uids, add, mode="+")
        if remove:
            await client.store(uids, remove, mode="-")
        if change.add_labels:
            await client.store_labels(uids, sorted(change.add_labels), mode="+")
        if change.remove_labels:
            await client.store_labels(uids, sorted(change.remove_labels), mode="-")
    connector._touch()


async def _entry(client: ImapClient, path: str) -> ListEntry | None:
    if any(c in path for c in "*%"):
        return None
    for entry in await client.list_mailboxes("", path):
        if _same_folder(entry.name, path):
            return entry
    return None


async def _require_folder(client: ImapClient, path: str) -> ListEntry:
    entry = await _entry(client, path)
    if entry is None or not entry.selectable:
        raise FolderNotFoundError(f"no folder {path!r} in this mailbox", folder=path)
    return entry


async def move_messages(connector: ImapConnector, refs: Sequence[MessageRef], folder: str) -> list[Moved]:
    """Move to ``folder`` (a path); each :class:`Moved` names the new ref when the server
    reports COPYUID (UIDPLUS), in the order of ``refs``."""
    client = connector._require()
    target = (await _require_folder(client, folder)).name
    moved: dict[MessageRef, MessageRef | None] = {}
    for source, versions in _by_folder(refs).items():
        if _same_folder(source, target):
            moved.update((ref, ref) for ref in refs if ref.scope == source)
            continue
        uids = await _present(connector, source, versions, write=True)
        try:
            validity, mapping = await client.move_mapped(uids, target)
        except CommandError as exc:
            raise _folder_error(exc, target) from exc
        for ref in refs:
            if ref.scope == source:
                new = mapping.get(int(ref.item)) if validity is not None else None
                moved[ref] = MessageRef(target, str(validity), str(new)) if new is not None else None
    connector._touch()
    return [Moved(ref, moved.get(ref)) for ref in refs]


async def trash_folder(connector: ImapConnector) -> str | None:
    """The path of the folder with the ``trash`` role (SPECIAL-USE ``\\Trash``, else a well-known
    name under the personal namespace), or None."""
    client = connector._require()
    namespace = await _personal(client)
    found: list[str] = []
    for entry in await client.list_mailboxes():
        role = role_of(entry.name, delimiter=entry.delimiter, flags=entry.flags, prefix=namespace.prefix)
        if role is Role.TRASH and entry.selectable:
            if entry.special_use is not None:
                return entry.name
            found.append(entry.name)
    return found[0] if found else None


async def delete_messages(
    connector: ImapConnector, refs: Sequence[MessageRef], *, permanent: bool = False
) -> None:
    """To the trash folder, or expunged (``permanent``, or already in the trash)."""
    if not refs:
        return
    trash = None if permanent else await trash_folder(connector)
    if not permanent and trash is None:
        raise TrashFolderMissingError("this mailbox has no folder with the trash role")
    client = connector._require()
    for folder, versions in _by_folder(refs).items():
        uids = await _present(connector, folder, versions, write=True)
        if trash is not None and not _same_folder(folder, trash):
            try:
                await client.move_mapped(uids, trash)
            except CommandError as exc:
                raise _folder_error(exc, trash) from exc
        else:
            await _expunge(client, folder, uids)
    connector._touch()


async def _expunge(client: ImapClient, folder: str, uids: list[int]) -> None:
    """``\\Deleted`` + UID EXPUNGE of just ``uids``. Without UIDPLUS a plain EXPUNGE would also
    remove every other message marked ``\\Deleted`` (by another client): refused then."""
    if not client.has("UIDPLUS"):
        others = set(await client.search_uids(b"DELETED")) - set(uids)
        if others:
            raise UnsupportedFeatureError(
                f"{len(others)} other messages in {folder!r} are marked \\Deleted, and this server "
                "cannot expunge only some messages (no UIDPLUS)",
                hint="Expunge the folder in a mail client first (or undelete those messages), then retry.",
            )
    await client.store(uids, ["\\Deleted"], mode="+")
    await client.expunge(uids if client.has("UIDPLUS") else None)


async def import_message(
    connector: ImapConnector,
    folder: str,
    raw: bytes,
    *,
    flags: Sequence[str] = (),
    received_at: datetime | None = None,
) -> MessageRef | None:
    """APPEND ``raw`` with ``flags`` and INTERNALDATE ``received_at``; its ref from APPENDUID
    (None without UIDPLUS)."""
    wanted = imap_flags(flags)
    if not raw.strip():
        raise InputError("the message is empty", field="body", hint="Send the whole RFC 5322 source.")
    client = connector._require()
    try:
        result = await client.append(folder, raw, flags=wanted, internaldate=received_at)
    except CommandError as exc:
        raise _folder_error(exc, folder) from exc
    connector._touch()
    if result.uid is None or result.uidvalidity is None:
        return None
    return MessageRef(folder, str(result.uidvalidity), str(result.uid))


# ---------------------------------------------------------------------------- folders


async def _personal(client: ImapClient) -> Namespace:
    namespaces = await client.namespace()
    return namespaces.personal[0] if namespaces.personal else Namespace("", None)


def _check_name(name: str, delimiter: str | None) -> None:
    problem = None
    if not name.strip():
        problem = "is empty"
    elif delimiter and delimiter in name:
        problem = f"contains the server's hierarchy separator {delimiter!r}"
    elif any(c in name for c in "*%") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        problem = "contains *, % or a control character"
    if problem is not None:
        raise InputError(
            f"the folder name {name[:60]!r} {problem}",
            field="name",
            hint="Give one level's name; put it under another folder with `parent`.",
        )


async def folder_info(connector: ImapConnector, path: str) -> Folder:
    """One folder as the folder list shows it (role, counts, subscribed)."""
    client = connector._require()
    entry = await _require_folder(client, path)
    namespace = await _personal(client)
    counts = await client.status(entry.name, ["MESSAGES", "UNSEEN"])
    subscribed = entry.name in await client.subscribed(entry.name)
    return Folder(
        path=entry.name,
        delimiter=entry.delimiter,
        name=display_name(entry.name, entry.delimiter),
        role=role_of(entry.name, delimiter=entry.delimiter, flags=entry.flags, prefix=namespace.prefix),
        messages=counts.get("MESSAGES"),
        unseen=counts.get("UNSEEN"),
        subscribed=subscribed,
        selectable=entry.selectable,
    )


async def _child_path(client: ImapClient, name: str, parent: str | None) -> str:
    """``name`` under ``parent`` (a path), or at the top of the personal namespace."""
    namespace = await _personal(client)
    if not parent:
        _check_name(name, namespace.delimiter)
        return namespace.prefix + name
    entry = await _entry(client, parent)
    if entry is None:
        raise FolderNotFoundError(f"no parent folder {parent!r} in this mailbox", folder=parent)
    delimiter = entry.delimiter or namespace.delimiter
    _check_name(name, delimiter)
    if delimiter is None or any(f.lower() == "\\noinferiors" for f in entry.flags):
        raise InputError(f"folder {parent!r} cannot have sub-folders", field="parent")
    return entry.name + delimiter + name


def _exists_error(exc: CommandError, path: str) -> Exception:
    code = (exc.details.get("response_code") or "").upper()
    if code == "ALREADYEXISTS" or "already exists" in (exc.server_said or "").lower():
        return FolderExistsError(f"folder {path!r} already exists", folder=path)
    return _folder_error(exc, path)


async def _subscribe(client: ImapClient, path: str, *, on: bool = True) -> None:
    try:
        await client.subscribe(path, on=on)
    except CommandError:
        pass  # subscriptions are a convenience for other clients; the folder itself is done


async def create_folder(connector: ImapConnector, name: str, *, parent: str | None = None) -> Folder:
    """CREATE ``name`` under ``parent`` or at the top of the personal namespace, subscribed."""
    client = connector._require()
    path = await _child_path(client, name, parent)
    try:
        await client.create(path)
    except CommandError as exc:
        raise _exists_error(exc, path) from exc
    await _subscribe(client, path)
    return await folder_info(connector, path)


def _refuse_inbox(path: str, action: str) -> None:
    if path.upper() == "INBOX":
        raise InputError(
            f"INBOX cannot be {action}",
            field="path",
            hint="INBOX always exists; move its messages instead.",
        )


async def rename_folder(
    connector: ImapConnector, path: str, *, name: str, parent: str | None = None
) -> Folder:
    """RENAME ``path`` to ``name``: under ``parent`` when given (``""``: the top of the personal
    namespace), else where it is now. Sub-folders move with it."""
    _refuse_inbox(path, "renamed")
    client = connector._require()
    entry = await _entry(client, path)
    if entry is None:
        raise FolderNotFoundError(f"no folder {path!r} in this mailbox", folder=path)
    if parent is None:
        delimiter = entry.delimiter
        _check_name(name, delimiter)
        here = entry.name.rpartition(delimiter)[0] if delimiter and delimiter in entry.name else ""
        target = here + (delimiter or "") + name if here else (await _personal(client)).prefix + name
    else:
        target = await _child_path(client, name, parent)
    if target != entry.name:
        subscribed = entry.name in await client.subscribed(entry.name)
        if connector.selection is not None and _same_folder(connector.selection.mailbox, entry.name):
            await select(connector, "INBOX")  # a renamed selected folder leaves the session unsure
        try:
            await client.rename(entry.name, target)
        except CommandError as exc:
            raise _exists_error(exc, target) from exc
        if subscribed:
            await _subscribe(client, entry.name, on=False)
            await _subscribe(client, target)
    return await folder_info(connector, target)


async def delete_folder(connector: ImapConnector, path: str) -> None:
    """DELETE ``path`` (not INBOX). Its sub-folders stay (RFC 3501 6.3.4: the server keeps the
    name as a non-selectable level, or refuses: then :class:`InputError`)."""
    _refuse_inbox(path, "deleted")
    client = connector._require()
    if connector.selection is not None and _same_folder(connector.selection.mailbox, path):
        await select(connector, "INBOX")
    try:
        await client.delete(path)
    except CommandError as exc:
        error = _folder_error(exc, path)
        if error is exc and "children" in (exc.server_said or "").lower():
            raise InputError(
                f"folder {path!r} has sub-folders",
                field="path",
                hint="Delete or move its sub-folders first.",
            ) from exc
        raise error from exc
    await _subscribe(client, path, on=False)
