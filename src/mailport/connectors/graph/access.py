"""Reading and acting on any message of a Microsoft Graph mailbox: folders, listings, search,
one message, threads, flags, move, delete, import, and creating, renaming and deleting folders.

Functions over a :class:`~mailport.connectors.graph.connector.GraphConnector` (whose methods of
the same names call them), as :mod:`mailport.connectors.imap_mail` is for IMAP, so that the
answers are the IMAP connector's, field for field:

* **Folders** are the mail folders, recursively; the inbox is ``INBOX`` and every other folder
  its displayName path joined with ``/`` (the inbox's children ``INBOX/Sub``); roles come from
  Graph's well-known names (``sentitems`` is ``sent``, ``deleteditems`` ``trash`` …). The tree
  is remembered per connector for :data:`TREE_SECONDS` (a path is resolved to an id on every
  call; listing the tree costs a request per level) and dropped on any folder change.
* **Refs** are ``(folder path, folder id, immutable message id)``: Graph's immutable ids name a
  message wherever it is in the mailbox, so a ref works until the message is deleted.
* **Listings** are newest first by ``receivedDateTime``; the cursor is base64url of the folder
  and Graph's ``@odata.nextLink`` (checked to be this folder's listing on this API before it is
  followed, so a cursor can never make mailport call another host).
* **Search** compiles the neutral query into ``$filter`` where Graph can filter (read, flagged,
  dates, attachments, an exact sender, Message-ID) and into a KQL ``$search`` for words
  (text, subject, body, to, cc, a partial sender, size, ``native``). Graph refuses ``$search``
  together with ``$filter`` or ``$orderby``, so a query with words runs as ``$search`` alone
  (results newest sent first, as Graph sorts them) and the criteria KQL cannot say (read,
  flagged, exact instants) are checked on each result: such a page may be short and still
  carry a ``next_cursor``, as IMAP's attachment checks do. A ``$filter`` with ``$orderby``
  starts with ``receivedDateTime`` (Graph answers InefficientFilter otherwise).
* **Flags**: ``seen`` is isRead, ``flagged`` the follow-up flag, ``draft`` isDraft (read only);
  keywords are Outlook categories; ``answered`` has no Graph property: refused (422).
* **Import** creates the message from its MIME in the folder. Graph keeps such a message a
  draft and gives it the time of the import as ``receivedDateTime`` (neither can be set through
  MIME), which is what stored drafts need; ``received_at`` is not kept.

Hand-written over the project's own Graph client (:mod:`.client`): the Graph SDK is synchronous
here, ~380 MB and slow to import (issue 17).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from mailport.connectors.base import MessageRef, RemoteMessage
from mailport.connectors.folders import Folder, Role
from mailport.connectors.graph import folders, sync
from mailport.connectors.graph.folders import DELIMITER
from mailport.connectors.graph.models import GraphFolder, GraphMessage, format_datetime
from mailport.connectors.imap_search import _instant, check_limit
from mailport.connectors.mail import (
    MAX_LIMIT,
    Envelope,
    Flag,
    FlagChange,
    ListQuery,
    MessagePage,
    MessageSummary,
    Moved,
    SearchQuery,
)
from mailport.errors import (
    FolderExistsError,
    FolderNotFoundError,
    InputError,
    InvalidCursorError,
    MessageNotFoundError,
    NotFoundError,
    ProviderError,
    TrashFolderMissingError,
    UnsupportedFeatureError,
)
from mailport.messages import headers as hdr
from mailport.messages.model import Address
from mailport.messages.threading import thread_key, thread_root

if TYPE_CHECKING:
    from mailport.connectors.graph.client import GraphClient
    from mailport.connectors.graph.connector import GraphConnector

TREE_SECONDS = 30.0  # how long a connector trusts the folder tree it listed
NATIVE_MAX = 2000  # characters of a native $search query
THREAD_MAX = 500  # messages of one conversation at most (as IMAP's threads)
SUMMARY_FIELDS = (
    "id",
    "conversationId",
    "parentFolderId",
    "changeKey",
    "subject",
    "from",
    "toRecipients",
    "ccRecipients",
    "replyTo",
    "sentDateTime",
    "receivedDateTime",
    "internetMessageId",
    "internetMessageHeaders",
    "isRead",
    "isDraft",
    "flag",
    "hasAttachments",
    "bodyPreview",
    "categories",
)
SELECT = SUMMARY_FIELDS
FETCH_FIELDS = (
    "id",
    "parentFolderId",
    "conversationId",
    "changeKey",
    "isRead",
    "isDraft",
    "flag",
    "categories",
    "receivedDateTime",
)
ORDER = "receivedDateTime desc"
ROOT = "msgfolderroot"  # the well-known name of the top of the folder tree (a move's destinationId)
_EVER = "1900-01-01T00:00:00Z"  # the receivedDateTime clause a $filter with $orderby starts with
_ADDRESS = re.compile(r'[^\s@"]+@[^\s@"]+\Z')
_KQL_SPECIAL = re.compile(r'["\\]')


def client_of(connector: GraphConnector) -> GraphClient:
    return connector.client


# ---------------------------------------------------------------------------- folders


@dataclass(frozen=True, slots=True)
class FolderTree:
    """The mailbox's folders (paths as :meth:`GraphClient.folders` gives them, the sync side's)."""

    listed: list[GraphFolder]
    at: float = field(default_factory=time.monotonic)

    def get(self, path: str) -> GraphFolder | None:
        wanted = folders.canonical(path)
        return next((f for f in self.listed if f.path == wanted), None)

    def by_id(self, folder_id: str) -> GraphFolder | None:
        return next((f for f in self.listed if f.id == folder_id), None)

    def role(self, wanted: Role) -> GraphFolder | None:
        return next((f for f in self.listed if folders.role(f) is wanted), None)


_trees: weakref.WeakKeyDictionary[Any, FolderTree] = weakref.WeakKeyDictionary()


async def tree(connector: GraphConnector, *, fresh: bool = False) -> FolderTree:
    """The folder tree, remembered for :data:`TREE_SECONDS` unless ``fresh``."""
    known = _trees.get(connector)
    if known is not None and not fresh and time.monotonic() - known.at < TREE_SECONDS:
        return known
    made = FolderTree(await client_of(connector).folders())
    _trees[connector] = made
    return made


def forget_tree(connector: GraphConnector) -> None:
    _trees.pop(connector, None)


async def resolve(connector: GraphConnector, path: str) -> GraphFolder:
    """The folder at ``path``; looked up again once before :class:`FolderNotFoundError`."""
    for fresh in (False, True):
        found = (await tree(connector, fresh=fresh)).get(path)
        if found is not None:
            return found
    raise FolderNotFoundError(f"no folder {path!r} in this mailbox", folder=path)


async def list_folders(connector: GraphConnector) -> list[Folder]:
    """Every mail folder with its role and counts (always fresh: counts change)."""
    return folders.neutral((await tree(connector, fresh=True)).listed)


async def folder_snapshot(connector: GraphConnector) -> list[Folder]:
    """The folder tree as :func:`list_folders` gives it (one listing is as cheap as Graph allows)."""
    return await list_folders(connector)


def _check_name(name: str) -> None:
    problem = None
    if not name.strip():
        problem = "is empty"
    elif DELIMITER in name:
        problem = f"contains {DELIMITER!r}, which separates levels of a path"
    elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        problem = "contains a control character"
    if problem is not None:
        raise InputError(
            f"the folder name {name[:60]!r} {problem}",
            field="name",
            hint="Give one level's name; put it under another folder with `parent`.",
        )


def _refuse_special(place: GraphFolder, action: str) -> None:
    if place.well_known:
        raise InputError(
            f"{place.path} is one of the mailbox's own folders ({place.well_known}) and cannot be {action}",
            field="path",
            hint="Microsoft 365 keeps its well-known folders (Inbox, Sent Items, Drafts, Deleted Items …); "
            "move their messages instead.",
        )


def _exists(name: str, parent: str | None) -> FolderExistsError:
    path = f"{parent}{DELIMITER}{name}" if parent else name
    return FolderExistsError(f"folder {path!r} already exists", folder=path)


async def create_folder(connector: GraphConnector, name: str, *, parent: str | None = None) -> Folder:
    """A new folder ``name`` under ``parent`` (a path) or at the top of the mailbox."""
    _check_name(name)
    parent_folder = await resolve(connector, parent) if parent else None
    known = await tree(connector, fresh=True)
    wanted = f"{parent_folder.path}{DELIMITER}{name}" if parent_folder else name
    if known.get(wanted) is not None:
        raise _exists(name, parent_folder.path if parent_folder else None)
    try:
        made = await client_of(connector).create_folder(
            name, parent_id=parent_folder.id if parent_folder else None
        )
    except ProviderError as exc:
        if exc.details.get("provider_status") == 409:
            raise _exists(name, parent_folder.path if parent_folder else None) from exc
        raise
    forget_tree(connector)
    return folders.to_folder(replace(made, path=wanted))


async def rename_folder(
    connector: GraphConnector, path: str, *, name: str, parent: str | None = None
) -> Folder:
    """Rename ``path`` to ``name``; with ``parent`` also move it there (``""``: the top)."""
    _check_name(name)
    folder = await resolve(connector, path)
    _refuse_special(folder, "renamed")
    client = client_of(connector)
    if parent is None:
        here = folder.path.rpartition(DELIMITER)[0] if DELIMITER in folder.path else ""
    else:
        here = parent
    target = f"{here}{DELIMITER}{name}" if here else name
    if target == folder.path:
        return folders.to_folder(folder)
    known = await tree(connector, fresh=True)
    if known.get(target) is not None:
        raise _exists(name, here or None)
    try:
        if parent is not None:
            destination = (await resolve(connector, parent)).id if parent else ROOT
            if destination != folder.parent_id:
                await move_folder(client, folder.id, destination)
        if name != folder.display_name:
            await client.rename_folder(folder.id, name)
    except ProviderError as exc:
        if exc.details.get("provider_status") == 409:
            raise _exists(name, here or None) from exc
        raise
    forget_tree(connector)
    return folders.to_folder(await resolve(connector, target))


async def move_folder(client: GraphClient, folder_id: str, destination_id: str) -> None:
    """``POST mailFolders/{id}/move`` (the client has no method for it yet)."""
    await client._call(
        "POST",
        client._path("mailFolders", quote(folder_id, safe=""), "move"),
        json={"destinationId": destination_id},
        expect=(200, 201),
        not_found=FolderNotFoundError,
    )


async def delete_folder(connector: GraphConnector, path: str) -> None:
    """Delete ``path`` (Graph moves it, with its sub-folders, to Deleted Items)."""
    folder = await resolve(connector, path)
    _refuse_special(folder, "deleted")
    try:
        await client_of(connector).delete_folder(folder.id)
    except NotFoundError as exc:
        raise FolderNotFoundError(f"no folder {path!r} in this mailbox", folder=path) from exc
    forget_tree(connector)


# ---------------------------------------------------------------------------- summaries


def _addresses(value: object) -> tuple[Address, ...]:
    out: list[Address] = []
    items = value if isinstance(value, list) else [value] if isinstance(value, Mapping) else []
    for item in items:
        email = item.get("emailAddress") if isinstance(item, Mapping) else None
        if isinstance(email, Mapping) and email.get("address"):
            out.append(Address(str(email.get("name") or ""), str(email["address"])))
    return tuple(out)


def _headers(data: Mapping[str, Any]) -> dict[str, str]:
    """internetMessageHeaders (received mail only) as lower-cased name -> first value."""
    found: dict[str, str] = {}
    for item in data.get("internetMessageHeaders") or ():
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            found.setdefault(item["name"].lower(), str(item.get("value") or ""))
    return found


def neutral_flags(message: GraphMessage) -> tuple[str, ...]:
    """isRead, the follow-up flag and isDraft as neutral names (as events have them), and
    categories as keywords."""
    flags = sync.neutral_flags(message)
    return flags + tuple(c for c in message.categories if c not in flags)


def summary(message: GraphMessage, place: GraphFolder | None) -> MessageSummary:
    """A listing item from a message resource (fields of :data:`SELECT`)."""
    data = message.data
    headers = _headers(data)
    own = hdr.msg_ids(message.internet_message_id)
    in_reply_to = hdr.msg_ids(headers.get("in-reply-to"))
    references = hdr.msg_ids(headers.get("references"))
    message_id = own[0] if own else None
    where = place.path if place is not None else ""
    envelope = Envelope(
        subject=message.subject,
        from_=_addresses(data.get("from")),
        to=_addresses(data.get("toRecipients")),
        cc=_addresses(data.get("ccRecipients")),
        reply_to=_addresses(data.get("replyTo")),
        date=message.sent_at,
        message_id=message_id,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
    )
    has_ids = bool(message_id or in_reply_to or references)
    return MessageSummary(
        ref=MessageRef(where, place.id if place is not None else message.folder_id or "", message.id),
        folder=where,
        envelope=envelope,
        flags=neutral_flags(message),
        size=0,
        received_at=message.received_at,
        has_attachments=message.has_attachments,
        preview=data.get("bodyPreview") if isinstance(data.get("bodyPreview"), str) else None,
        thread_key=thread_key(
            message_id=message_id,
            in_reply_to=in_reply_to,
            references=references,
            content_sha256=hashlib.sha256(message.id.encode()).hexdigest(),
        ),
        thread_root=thread_root(
            message_id=message_id, in_reply_to=in_reply_to, references=references, content_sha256=""
        )
        if has_ids
        else None,
    )


# ---------------------------------------------------------------------------- cursors


def encode_cursor(folder: str, next_link: str, *, skip: int = 0) -> str:
    """The folder, Graph's nextLink and how many of that page were already returned."""
    packed = json.dumps([folder, next_link, skip], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(packed.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, folder: str, *, base_url: str) -> tuple[str, int]:
    """(nextLink, skip) of a cursor made for ``folder`` by this API; :class:`InvalidCursorError`
    for anything else: another folder's cursor, or a link to anywhere but ``base_url``."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (
            isinstance(parts, list)
            and len(parts) == 3
            and isinstance(parts[0], str)
            and isinstance(parts[1], str)
            and isinstance(parts[2], int)
            and parts[2] >= 0
        ):
            raise ValueError("not a listing cursor")
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursorError("the cursor is not one this API returned", field="cursor") from exc
    if parts[0] != folder and not (parts[0].upper() == folder.upper() == "INBOX"):
        raise InvalidCursorError(
            f"the cursor belongs to folder {parts[0]!r}, not {folder!r}",
            field="cursor",
            hint="Pass the cursor with the folder it was made for, or omit it to start over.",
        )
    link, base = urlsplit(parts[1]), urlsplit(base_url)
    if (link.scheme, link.netloc) != (base.scheme, base.netloc) or not link.path.startswith(base.path):
        raise InvalidCursorError("the cursor is not one this API returned", field="cursor")
    return parts[1], parts[2]


# ---------------------------------------------------------------------------- listing


async def list_messages(connector: GraphConnector, query: ListQuery) -> MessagePage:
    """A page of ``query.folder``, newest first by receivedDateTime."""
    limit = check_limit(query.limit)
    folder = await resolve(connector, query.folder)
    clauses = []
    since = _instant(query.since, "since")
    clauses.append(f"receivedDateTime ge {format_datetime(since) if since else _EVER}")
    if query.unseen is not None:
        clauses.append(f"isRead eq {'false' if query.unseen else 'true'}")
    return await _page(
        connector, folder, limit=limit, cursor=query.cursor, filter=" and ".join(clauses), orderby=ORDER
    )


async def _page(
    connector: GraphConnector,
    folder: GraphFolder,
    *,
    limit: int,
    cursor: str | None,
    filter: str | None = None,
    search: str | None = None,
    orderby: str | None = None,
    admits: Any = None,
) -> MessagePage:
    """One page of at most ``limit`` items from Graph's listing (``admits``: a check each item
    must pass; then Graph's pages are read until the page is full or :data:`MAX_LIMIT` items
    were checked)."""
    client = client_of(connector)
    link, skip = decode_cursor(cursor, folder.path, base_url=client.http.base_url) if cursor else (None, 0)
    kept: list[MessageSummary] = []
    checked = 0
    while True:
        page = await client.list_messages(
            folder.id,
            top=limit,
            next_link=link,
            filter=filter,
            search=search,
            orderby=orderby,
            select=SELECT,
        )
        items = page.items[skip:]
        for n, message in enumerate(items, start=skip):
            checked += 1
            item = summary(message, folder)
            if admits is not None and not admits(message, item):
                continue
            kept.append(item)
            if len(kept) == limit:
                # pages are ``limit`` long: only a later page (which has a link) can be left halfway
                if n + 1 < len(page.items) and link is not None:
                    return MessagePage(kept, encode_cursor(folder.path, link, skip=n + 1))
                return MessagePage(
                    kept, encode_cursor(folder.path, page.next_link) if page.next_link else None
                )
        if page.next_link is None:
            return MessagePage(kept, None)
        if admits is None or checked >= MAX_LIMIT:
            return MessagePage(kept, encode_cursor(folder.path, page.next_link))
        link, skip = page.next_link, 0


# ---------------------------------------------------------------------------- search


@dataclass(frozen=True, slots=True)
class GraphSearch:
    """What a query asks Graph: ``filter`` (with ``$orderby``) or ``search`` (alone), and the
    criteria checked on every result because the chosen form cannot say them."""

    filter: str | None = None
    search: str | None = None
    seen: bool | None = None
    flagged: bool | None = None
    since: datetime | None = None
    before: datetime | None = None
    has_attachment: bool | None = None
    message_id: str | None = None

    @property
    def checks(self) -> bool:
        return any(
            v is not None
            for v in (self.seen, self.flagged, self.since, self.before, self.has_attachment, self.message_id)
        )

    def admits(self, message: GraphMessage, _item: MessageSummary | None = None) -> bool:
        if self.seen is not None and bool(message.is_read) is not self.seen:
            return False
        if self.flagged is not None and message.flagged is not self.flagged:
            return False
        when = message.received_at
        if when is not None:
            if self.since is not None and when < self.since:
                return False
            if self.before is not None and when >= self.before:
                return False
        if self.has_attachment is not None and message.has_attachments is not None:
            if bool(message.has_attachments) is not self.has_attachment:
                return False
        if self.message_id is not None:
            own = hdr.msg_ids(message.internet_message_id)
            return bool(own) and own[0] == self.message_id
        return True


def _odata(value: str) -> str:
    """An OData string literal (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def _kql(name: str | None, value: str, field: str) -> str:
    """A KQL term: ``name:"value"`` (or a bare phrase), quotes and backslashes dropped (KQL
    has no escape for them)."""
    if not value.strip():
        raise InputError(f"{field} must not be empty", field=field)
    phrase = '"' + _KQL_SPECIAL.sub(" ", value).strip() + '"'
    return f"{name}:{phrase}" if name else phrase


def compile_search(query: SearchQuery) -> GraphSearch:
    """The Graph request for ``query`` (see the module docstring); pure."""
    if query.answered is not None:
        raise UnsupportedFeatureError(
            "Microsoft Graph has no answered flag to search by",
            hint="Leave out `answered`; Graph cannot tell replied-to messages apart.",
        )
    if query.headers:
        raise UnsupportedFeatureError(
            "Microsoft Graph cannot search by arbitrary header fields",
            hint="Search by message_id, from, to, cc, subject, text or body instead, "
            "or pass a KQL query in `native`.",
        )
    since, before = _instant(query.since, "since"), _instant(query.before, "before")
    if since is not None and before is not None and since >= before:
        raise InputError("since must be earlier than before", field="since")
    terms: list[str] = []
    exact_from = query.from_ is not None and bool(_ADDRESS.match(query.from_.strip()))
    for name, label, value in (
        ("to", "to", query.to),
        ("cc", "cc", query.cc),
        ("subject", "subject", query.subject),
        (None, "text", query.text),
        ("body", "body", query.body),
    ):
        if value is not None:
            terms.append(_kql(name, value, label))
    if query.from_ is not None and not exact_from:
        terms.append(_kql("from", query.from_, "from"))
    for op, label, size in ((">", "larger", query.larger), ("<", "smaller", query.smaller)):
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise InputError(f"{label} must be a number of bytes (0 or more)", field=label)
            terms.append(f"size{op}{size}")
    if query.native is not None:
        native = query.native.strip()
        if not native:
            raise InputError("native must not be empty", field="native")
        if len(native) > NATIVE_MAX or any(c in native for c in "\r\n\0"):
            raise InputError(
                f"native: not a usable KQL query (at most {NATIVE_MAX} characters, one line)",
                field="native",
                hint='Write a KQL query as Outlook search takes it, e.g. from:alice subject:"invoice".',
            )
        terms.append(f"({native})" if terms else native)
    message_id = None
    if query.message_id is not None:
        own = hdr.msg_ids(query.message_id.strip()) or [query.message_id.strip().strip("<>")]
        message_id = own[0]
        if not message_id:
            raise InputError("message_id must not be empty", field="message_id")
    if terms:
        # $search alone (Graph refuses it with $filter/$orderby): the rest is checked per result
        if exact_from:
            terms.append(_kql("from", query.from_ or "", "from"))
        if query.has_attachment is not None:
            terms.append(f"hasAttachments:{'true' if query.has_attachment else 'false'}")
        return GraphSearch(
            search=" AND ".join(terms),
            seen=query.seen,
            flagged=query.flagged,
            since=since,
            before=before,
            has_attachment=query.has_attachment,
            message_id=message_id,
        )
    clauses = [f"receivedDateTime ge {format_datetime(since) if since else _EVER}"]
    if before is not None:
        clauses.append(f"receivedDateTime lt {format_datetime(before)}")
    if query.seen is not None:
        clauses.append(f"isRead eq {'true' if query.seen else 'false'}")
    if query.flagged is not None:
        clauses.append(f"flag/flagStatus {'eq' if query.flagged else 'ne'} 'flagged'")
    if query.has_attachment is not None:
        clauses.append(f"hasAttachments eq {'true' if query.has_attachment else 'false'}")
    if exact_from:
        clauses.append(f"from/emailAddress/address eq {_odata((query.from_ or '').strip())}")
    if message_id is not None:
        clauses.append(f"internetMessageId eq {_odata(f'<{message_id}>')}")
    return GraphSearch(filter=" and ".join(clauses))


async def search_messages(connector: GraphConnector, query: SearchQuery) -> MessagePage:
    """A page of ``query``'s results in ``query.folder``."""
    limit = check_limit(query.limit)
    program = compile_search(query)
    folder = await resolve(connector, query.folder)
    if program.search is not None:
        return await _page(
            connector,
            folder,
            limit=limit,
            cursor=query.cursor,
            search=program.search,
            admits=program.admits if program.checks else None,
        )
    return await _page(
        connector, folder, limit=limit, cursor=query.cursor, filter=program.filter, orderby=ORDER
    )


# ---------------------------------------------------------------------------- one message


async def fetch_message(connector: GraphConnector, ref: MessageRef) -> RemoteMessage:
    """The message's MIME (``/$value``), flags and categories, without marking it read."""
    client = client_of(connector)
    message = await _get(client, ref, select=FETCH_FIELDS)
    raw = await client.get_mime(message.id)
    reader = sync.DeltaReader(client, max_bytes=connector.context.max_message_bytes)
    return replace(reader.remote(message, raw), flags=neutral_flags(message))


async def _get(client: GraphClient, ref: MessageRef, *, select: Sequence[str]) -> GraphMessage:
    try:
        return await client.get_message(ref.item, select=select)
    except NotFoundError as exc:
        raise MessageNotFoundError(f"the message is gone from {ref.scope!r}", ref=ref.encode()) from exc


async def _present(
    client: GraphClient, refs: Sequence[MessageRef], *, select: Sequence[str]
) -> list[GraphMessage]:
    """Every message of ``refs``; :class:`MessageNotFoundError` (before anything changed) when
    any of them is gone."""
    found: list[GraphMessage] = []
    missing: list[str] = []
    for ref in refs:
        try:
            found.append(await client.get_message(ref.item, select=select))
        except NotFoundError:
            missing.append(ref.encode())
    if missing:
        raise MessageNotFoundError(
            f"{len(missing)} of the messages are gone; nothing was changed", refs=missing
        )
    return found


# ---------------------------------------------------------------------------- threads


async def thread_messages(connector: GraphConnector, root: str) -> list[MessageSummary]:
    """The conversation of the message whose Message-ID is ``root`` (by its conversationId),
    over the whole mailbox, oldest first; [] when no message of the mailbox has that id."""
    client = client_of(connector)
    wanted = root.strip().strip("<>")
    first = await client.list_messages(
        None, top=1, filter=f"internetMessageId eq {_odata(f'<{wanted}>')}", select=("id", "conversationId")
    )
    if not first.items or not first.items[0].conversation_id:
        return []
    conversation = first.items[0].conversation_id
    known = await tree(connector)
    found: list[MessageSummary] = []
    link: str | None = None
    while len(found) < THREAD_MAX:
        page = await client.list_messages(
            None,
            top=min(THREAD_MAX, 100),
            next_link=link,
            filter=f"conversationId eq {_odata(conversation)}",
            select=SELECT,
        )
        for message in page.items:
            place = known.by_id(message.folder_id or "")
            if place is None:
                known = await tree(connector, fresh=True)
                place = known.by_id(message.folder_id or "")
            found.append(summary(message, place))
        if page.next_link is None:
            break
        link = page.next_link
    return sorted(found, key=_oldest_first)[:THREAD_MAX]


_EPOCH = datetime.min.replace(tzinfo=UTC)


def _oldest_first(item: MessageSummary) -> tuple[datetime, datetime]:
    return (item.envelope.date or item.received_at or _EPOCH, item.received_at or _EPOCH)


# ---------------------------------------------------------------------------- actions


def _categories(flags: Iterable[str]) -> list[str]:
    out: list[str] = []
    for flag in flags:
        if not flag or not flag.strip() or any(ord(c) < 0x20 for c in flag) or len(flag) > 255:
            raise InputError(
                f"not a flag: {flag[:60]!r}",
                field="flags",
                hint="Use seen or flagged, or a keyword (kept as an Outlook category).",
            )
        out.append(flag)
    return out


_NEUTRAL = {str(f) for f in Flag}


def _split(flags: frozenset[str]) -> tuple[set[str], list[str]]:
    """Neutral names (lower-cased) and keywords."""
    neutral = {f.lower() for f in flags if f.lower() in _NEUTRAL}
    return neutral, _categories(f for f in flags if f.lower() not in _NEUTRAL)


async def update_flags(connector: GraphConnector, refs: Sequence[MessageRef], change: FlagChange) -> None:
    """isRead, the follow-up flag and categories on every ref (``draft`` and ``answered``
    cannot be set through Graph: 422, nothing changed)."""
    add, add_keywords = _split(change.add)
    remove, remove_keywords = _split(change.remove)
    if change.add_labels or change.remove_labels:
        raise UnsupportedFeatureError(
            "this mailbox has no labels (Microsoft Graph)",
            hint="Use flags or keywords (`add`/`remove`; keywords are Outlook categories), "
            "or move the message.",
        )
    fixed = (add | remove) & {Flag.ANSWERED, Flag.DRAFT}
    if fixed:
        raise UnsupportedFeatureError(
            f"Microsoft Graph cannot set or clear {', '.join(sorted(fixed))}",
            hint="Graph sets isDraft itself and has no answered flag; change seen, flagged or keywords.",
        )
    if change.empty or not refs:
        return
    client = client_of(connector)
    keywords = bool(add_keywords or remove_keywords)
    messages = await _present(client, refs, select=("id", "categories") if keywords else ("id",))
    for message in messages:
        categories = None
        if keywords:
            current = list(message.categories)
            categories = [c for c in current if c not in remove_keywords]
            categories += [c for c in add_keywords if c not in categories]
            if categories == current:
                categories = None
        is_read = True if Flag.SEEN in add else False if Flag.SEEN in remove else None
        flag = "flagged" if Flag.FLAGGED in add else "notFlagged" if Flag.FLAGGED in remove else None
        if is_read is None and flag is None and categories is None:
            continue
        await client.update(message.id, is_read=is_read, flag=flag, categories=categories)


async def move_messages(connector: GraphConnector, refs: Sequence[MessageRef], folder: str) -> list[Moved]:
    """Move to ``folder``; each :class:`Moved` names the message's new ref (Graph answers the
    moved message)."""
    target = await resolve(connector, folder)
    client = client_of(connector)
    messages = await _present(client, refs, select=("id", "parentFolderId"))
    moved: list[Moved] = []
    for ref, message in zip(refs, messages, strict=True):
        if message.folder_id == target.id:
            moved.append(Moved(ref, MessageRef(target.path, target.id, message.id)))
            continue
        new = await client.move(message.id, target.id)
        moved.append(Moved(ref, MessageRef(target.path, target.id, new)))
    return moved


async def delete_messages(
    connector: GraphConnector, refs: Sequence[MessageRef], *, permanent: bool = False
) -> None:
    """To Deleted Items, or for good (``permanent``, or already in Deleted Items)."""
    if not refs:
        return
    client = client_of(connector)
    trash = (await tree(connector)).role(Role.TRASH)
    if not permanent and trash is None:
        trash = (await tree(connector, fresh=True)).role(Role.TRASH)
        if trash is None:
            raise TrashFolderMissingError("this mailbox has no Deleted Items folder")
    messages = await _present(client, refs, select=("id", "parentFolderId"))
    for message in messages:
        try:
            if permanent or (trash is not None and message.folder_id == trash.id):
                await client.permanent_delete(message.id)
            else:
                await client.move(message.id, trash.id if trash is not None else "deleteditems")
        except NotFoundError:
            continue  # deleted meanwhile: what was asked holds


async def import_message(
    connector: GraphConnector,
    folder: str,
    raw: bytes,
    *,
    flags: Sequence[str] = (),
    received_at: datetime | None = None,
) -> MessageRef | None:
    """Create the message from ``raw`` (MIME) in ``folder``, then set ``seen``/``flagged`` and
    keywords; its ref. ``received_at`` cannot be set through Graph (see the module docstring)."""
    if not raw.strip():
        raise InputError("the message is empty", field="body", hint="Send the whole RFC 5322 source.")
    wanted, keywords = _split(frozenset(flags))
    if Flag.ANSWERED in wanted:
        raise UnsupportedFeatureError(
            "Microsoft Graph has no answered flag", hint="Import without `answered`."
        )
    target = await resolve(connector, folder)
    client = client_of(connector)
    made = await client.create_mime(target.id, raw)
    is_read = True if Flag.SEEN in wanted else None
    flag = "flagged" if Flag.FLAGGED in wanted else None
    if is_read is not None or flag is not None or keywords:
        await client.update(made, is_read=is_read, flag=flag, categories=keywords or None)
    return MessageRef(target.path, target.id, made)
