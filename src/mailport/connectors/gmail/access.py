"""Reading and acting on any message of a Gmail-API mailbox with the same calls as IMAP:
folders (labels), listings, search, one message, threads, flags and labels, move, delete,
import, and creating, renaming and deleting labels.

Functions over a connected :class:`~mailport.connectors.gmail.connector.GmailConnector` (whose
methods of the same names call them), as :mod:`mailport.connectors.imap_mail` is for IMAP.

* **Refs.** ``scope`` is the folder path (a system label's id, a user label's name), ``epoch``
  the label's id (a label deleted and made again is a new epoch), ``item`` Gmail's message id,
  as the contract's mapping says. A message found outside any folder (an archived reply of a
  thread) has scope and epoch ``""``: anywhere in the mailbox. A ref whose message no longer
  carries its label (moved, trashed) is a 404, as a moved IMAP message's old UID is.
* **Listings** are ``messages.list`` (``labelIds``, newest first, at most ``limit``) and the
  messages' ``format=metadata`` in batches of 50 (one HTTP request per 50 messages). The page
  cursor is base64url of ``[folder, label id, pageToken]``. ``has_attachments`` comes from the
  top-level Content-Type (``multipart/mixed`` or a non-text single part), ``preview`` from
  Gmail's snippet.
* **Reading** is ``format=raw`` through mailport's own parser (the message view code), never
  marking the message read; above the size limit only its header block is kept.
* **Flags**: ``seen`` = no ``UNREAD`` label, ``flagged`` = ``STARRED``, ``draft`` = ``DRAFT``
  (read-only: a draft is made with ``drafts.create``). Gmail has no ``answered`` flag and no
  keywords: refused (422 ``unsupported_feature``), never dropped. Labels are set and cleared by
  name with ``batchModify``.
* **Move** adds the target label and removes the source one (the message id stays: the new ref
  differs in scope and epoch only); into ``TRASH`` it is ``messages.trash``. **Delete** is
  ``messages.trash``; ``permanent`` (or a message already in the trash) is ``batchDelete``,
  which Gmail allows only with the full ``https://mail.google.com/`` scope — under the
  connector's ``gmail.modify`` it is refused with a clear 422. Drafts are deleted for good with
  ``drafts.delete`` (allowed under ``gmail.modify``), so a sent or replaced draft leaves nothing.
* **Import** is ``messages.insert`` (like IMAP APPEND: no spam check, nothing sent) with the
  folder's label plus ``UNREAD``/``STARRED`` from the flags; into ``DRAFT`` it is
  ``drafts.create``, so the draft is a real one every Gmail client can edit and send.
  ``received_at`` cannot be set as such: Gmail takes the date from the Date header then.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from mailport.connectors.base import MessageRef, RemoteMessage
from mailport.connectors.envelope import LISTING_HEADERS, parse_envelope
from mailport.connectors.folders import Folder
from mailport.connectors.gmail import labels as gl
from mailport.connectors.gmail.models import GmailMessage, Label
from mailport.connectors.gmail.search import compile_q
from mailport.connectors.gmail.sync import remote_message
from mailport.connectors.imap_search import check_limit
from mailport.connectors.mail import (
    Flag,
    FlagChange,
    ListQuery,
    MessagePage,
    MessageSummary,
    Moved,
    SearchQuery,
)
from mailport.errors import (
    CursorExpiredError,
    FolderExistsError,
    FolderNotFoundError,
    InputError,
    InvalidCursorError,
    MessageNotFoundError,
    OAuthPermissionMissingError,
    ProviderError,
    UnsupportedFeatureError,
)

if TYPE_CHECKING:
    from mailport.connectors.gmail.client import GmailClient

METADATA_HEADERS = (*LISTING_HEADERS, "Content-Type")
FULL_SCOPE = "https://mail.google.com/"
MAX_THREAD = 500  # a longer conversation is cut to its oldest messages
_EPOCH = datetime.min.replace(tzinfo=UTC)


class GmailSession(Protocol):
    """What these functions need from the connector: its client and its size limit."""

    def _require(self) -> GmailClient:
        """The connected client (:class:`~mailport.errors.ConnectionLostError` when not)."""
        ...

    @property
    def max_message_bytes(self) -> int: ...


# ---------------------------------------------------------------------------- summaries


def _has_attachments(content_type: str | None) -> bool | None:
    """From the top-level Content-Type: ``multipart/mixed`` or a non-text single part has
    attachments; text and ``multipart/alternative``/``related`` have none; None: unknown."""
    if not content_type:
        return False  # RFC 2045: text/plain by default
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "multipart/mixed":
        return True
    if kind.startswith("text/") or kind in ("multipart/alternative", "multipart/related"):
        return False
    if kind.startswith("multipart/"):
        return None
    return True


def _header_block(headers: dict[str, str] | None) -> bytes:
    lines = []
    for name in LISTING_HEADERS:
        value = (headers or {}).get(name.lower())
        if value is not None:
            lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("utf-8", "surrogatepass")


def _labels_of(message: GmailMessage, known: gl.Labels) -> tuple[str, ...]:
    """A message's labels by folder path (UNREAD is the ``seen`` flag, not a label)."""
    return tuple(known.name(label_id) for label_id in message.label_ids if label_id != "UNREAD")


def summary(message: GmailMessage, folder: str, epoch: str, known: gl.Labels) -> MessageSummary:
    """A listing item from ``format=metadata``."""
    parsed = parse_envelope(_header_block(message.headers))
    return MessageSummary(
        ref=MessageRef(folder, epoch, message.id),
        folder=folder,
        envelope=parsed.envelope,
        flags=gl.neutral_flags(message.label_ids),
        labels=_labels_of(message, known),
        size=message.size_estimate,
        received_at=message.internal_date,
        has_attachments=_has_attachments((message.headers or {}).get("content-type")),
        preview=message.snippet or None,
        thread_key=parsed.thread_key,
        thread_root=parsed.thread_root,
    )


async def summaries(
    session: GmailSession, folder: str, epoch: str, ids: Sequence[str]
) -> list[MessageSummary]:
    """Listing items for ``ids`` (in that order; gone ones left out), batched."""
    if not ids:
        return []
    client = session._require()
    fetched = await client.get_messages(list(ids), format="metadata", metadata_headers=METADATA_HEADERS)
    known = await gl.labels(client)
    return [summary(message, folder, epoch, known) for message in fetched if message is not None]


# ---------------------------------------------------------------------------- listing


def encode_cursor(folder: str, label_id: str, page_token: str) -> str:
    packed = json.dumps([folder, label_id, page_token], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(packed.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, folder: str, label: Label) -> str:
    """The page token of a cursor made for ``folder``; :class:`InvalidCursorError` for anything
    else, :class:`CursorExpiredError` when the label was deleted and made again since."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (isinstance(parts, list) and len(parts) == 3 and all(isinstance(p, str) for p in parts)):
            raise ValueError("not a listing cursor")
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursorError("the cursor is not one this API returned", field="cursor") from exc
    if parts[0] != folder:
        raise InvalidCursorError(
            f"the cursor belongs to folder {parts[0]!r}, not {folder!r}",
            field="cursor",
            hint="Pass the cursor with the folder it was made for, or omit it to start over.",
        )
    if parts[1] != label.id:
        raise CursorExpiredError(f"label {folder!r} was deleted and made again since", folder=folder)
    return str(parts[2])


async def _page(
    session: GmailSession,
    folder: str,
    *,
    limit: int,
    cursor: str | None,
    q: str | None,
    label_ids: Sequence[str] = (),
    since: datetime | None = None,
    before: datetime | None = None,
) -> MessagePage:
    """One page of ``folder`` (with ``q`` and extra ``label_ids``), newest first; ``since`` and
    ``before`` checked exactly on each item (Gmail's ``after:`` is by the second)."""
    check_limit(limit)
    label = await gl.resolve(session._require(), folder)
    path = gl.path_of(label)
    token = decode_cursor(cursor, path, label) if cursor else None
    found = await session._require().list_messages(
        label_ids=[label.id, *label_ids],
        q=q or None,
        page_token=token,
        max_results=limit,
        include_spam_trash=label.id in gl.HIDING,
    )
    items = await summaries(session, path, label.id, [m.id for m in found.ids])
    items = [
        item
        for item in items
        if item.received_at is None
        or ((since is None or item.received_at >= since) and (before is None or item.received_at < before))
    ]
    next_cursor = encode_cursor(path, label.id, found.next_page_token) if found.next_page_token else None
    return MessagePage(items, next_cursor)


async def list_messages(session: GmailSession, query: ListQuery) -> MessagePage:
    """A page of ``query.folder``, newest first; ``unseen`` as the UNREAD label or ``is:read``,
    ``since`` as ``after:`` (checked exactly)."""
    terms: list[str] = []
    extra: list[str] = []
    if query.unseen is True:
        extra.append("UNREAD")
    elif query.unseen is False:
        terms.append("is:read")
    if query.since is not None:
        if query.since.tzinfo is None:
            raise InputError("since needs a time zone (e.g. 2024-03-01T00:00:00Z)", field="since")
        terms.append(f"after:{int(query.since.timestamp()) - 1}")
    return await _page(
        session,
        query.folder,
        limit=query.limit,
        cursor=query.cursor,
        q=" ".join(terms),
        label_ids=extra,
        since=query.since,
    )


async def search_messages(session: GmailSession, query: SearchQuery) -> MessagePage:
    """A page of ``query``'s results in ``query.folder`` (Gmail's ``q``: :mod:`.search`)."""
    check_limit(query.limit)
    q = compile_q(query)
    try:
        return await _page(
            session,
            query.folder,
            limit=query.limit,
            cursor=query.cursor,
            q=q,
            since=query.since,
            before=query.before,
        )
    except ProviderError as exc:
        if exc.details.get("provider_status") == 400 and query.native is not None:
            raise InputError(
                f"native: Gmail refused the search: {exc.server_said or exc.message}",
                field="native",
                hint="Write Gmail search operators as in Gmail's search box "
                "(https://support.google.com/mail/answer/7190).",
            ) from exc
        raise


# ---------------------------------------------------------------------------- one message


async def _label_of(session: GmailSession, ref: MessageRef) -> Label | None:
    """The label ``ref`` was made in (None: anywhere); a 404 when it was made again since."""
    if not ref.scope and not ref.epoch:
        return None
    label = await gl.resolve(session._require(), ref.scope)
    if label.id != ref.epoch:
        raise MessageNotFoundError(f"label {ref.scope!r} was deleted and made again since", ref=ref.encode())
    return label


async def fetch_message(session: GmailSession, ref: MessageRef) -> RemoteMessage:
    """The whole source (``format=raw``: reading never removes UNREAD), or headers only with
    ``oversized`` above the size limit."""
    label = await _label_of(session, ref)
    try:
        message = await session._require().get_message(ref.item, format="raw")
    except MessageNotFoundError as exc:
        raise MessageNotFoundError(f"message {ref.item} is gone from the mailbox", ref=ref.encode()) from exc
    if label is not None and not gl.contains(message.label_ids, label.id):
        raise MessageNotFoundError(f"message {ref.item} is no longer in {ref.scope!r}", ref=ref.encode())
    remote = remote_message(message, max_bytes=session.max_message_bytes)
    remote.size = message.size_estimate or remote.size  # as listings give it
    remote.flags = gl.neutral_flags(message.label_ids)
    remote.labels = _labels_of(message, await gl.labels(session._require()))
    return remote


async def thread_messages(session: GmailSession, root: str) -> list[MessageSummary]:
    """The Gmail thread of the message whose Message-ID is ``root`` (``rfc822msgid:``), oldest
    first; each message shown in its folder (:func:`labels.home`); trash and spam left out, as
    IMAP leaves them out. [] when the root is not in the mailbox."""
    client = session._require()
    bare = root.strip().removeprefix("<").removesuffix(">").strip()
    if not bare or any(c.isspace() or c == '"' for c in bare):
        return []
    found = await client.list_messages(q=f"rfc822msgid:{bare}", max_results=1)
    if not found.ids:
        return []
    thread = await client.thread(found.ids[0].thread_id, format="metadata")
    known = await gl.labels(client)
    items: list[MessageSummary] = []
    for message in thread.messages:
        if set(message.label_ids).intersection(gl.HIDING):
            continue
        home = gl.home(message.label_ids, known)
        path, epoch = (gl.path_of(home), home.id) if home is not None else ("", "")
        items.append(summary(message, path, epoch, known))
    items.sort(key=lambda s: (s.envelope.date or s.received_at or _EPOCH, s.received_at or _EPOCH))
    return items[:MAX_THREAD]


# ---------------------------------------------------------------------------- actions


async def present(session: GmailSession, refs: Sequence[MessageRef]) -> dict[MessageRef, GmailMessage]:
    """The messages of ``refs`` (``format=minimal``, batched) when every one is still where its
    ref says; :class:`MessageNotFoundError` naming the others, before anything changed."""
    labels_of: dict[MessageRef, Label | None] = {}
    for ref in refs:
        try:
            labels_of[ref] = await _label_of(session, ref)
        except MessageNotFoundError:
            continue  # its label was made again: reported below as gone
    fetched = await session._require().get_messages([ref.item for ref in refs], format="minimal")
    found: dict[MessageRef, GmailMessage] = {}
    missing: list[str] = []
    for ref, message in zip(refs, fetched, strict=True):
        if ref not in labels_of or message is None:
            missing.append(ref.encode())
            continue
        label = labels_of[ref]
        if label is not None and not gl.contains(message.label_ids, label.id):
            missing.append(ref.encode())
            continue
        found[ref] = message
    if missing:
        raise MessageNotFoundError(
            f"{len(missing)} of the messages are gone from where their refs say; nothing was changed",
            refs=missing,
        )
    return found


_FLAG_LABELS = {Flag.SEEN: "UNREAD", Flag.FLAGGED: "STARRED"}


def _flag_labels(flags: frozenset[str], *, adding: bool) -> tuple[set[str], set[str]]:
    """Neutral flags -> (labels to add, labels to remove) for ``adding`` them (or removing)."""
    add: set[str] = set()
    remove: set[str] = set()
    for flag in flags:
        name = flag.lower()
        if name == Flag.SEEN:  # seen is the absence of UNREAD
            (remove if adding else add).add("UNREAD")
        elif name == Flag.FLAGGED:
            (add if adding else remove).add("STARRED")
        elif name == Flag.DRAFT:
            raise UnsupportedFeatureError(
                "Gmail cannot mark a message as a draft",
                hint="Create drafts with POST /v1/mailboxes/{id}/drafts (Gmail's drafts.create).",
            )
        elif name == Flag.ANSWERED:
            raise UnsupportedFeatureError(
                "Gmail keeps no answered flag",
                hint="Leave out `answered`; Gmail shows a reply in the message's thread instead.",
            )
        else:
            raise UnsupportedFeatureError(
                f"Gmail has no keywords ({flag[:60]!r})",
                hint="Use a label instead: add_labels / remove_labels with a label's name.",
            )
    return add, remove


async def _label_ids(session: GmailSession, names: frozenset[str]) -> set[str]:
    ids: set[str] = set()
    for name in names:
        try:
            label = await gl.resolve(session._require(), name)
        except FolderNotFoundError as exc:
            raise FolderNotFoundError(
                f"no label {name!r} in this mailbox",
                folder=name,
                hint="Create the label first (POST /v1/mailboxes/{id}/folders), then set it.",
            ) from exc
        if label.id == "DRAFT":
            raise InputError("the DRAFT label cannot be set or cleared", field="labels")
        ids.add(label.id)
    return ids


async def update_flags(session: GmailSession, refs: Sequence[MessageRef], change: FlagChange) -> None:
    """Flags as labels (UNREAD, STARRED) and labels by name, in one ``batchModify``."""
    add, remove = _flag_labels(change.add, adding=True)
    add_too, remove_too = _flag_labels(change.remove, adding=False)
    add |= add_too
    remove |= remove_too
    add |= await _label_ids(session, change.add_labels)
    remove |= await _label_ids(session, change.remove_labels)
    if add & remove:
        raise InputError(
            f"the same flag or label is both added and removed ({', '.join(sorted(add & remove))})",
            field="flags",
        )
    if not (add or remove) or not refs:
        return
    found = await present(session, refs)
    await session._require().batch_modify(
        [m.id for m in found.values()], add=sorted(add), remove=sorted(remove)
    )


async def move_messages(session: GmailSession, refs: Sequence[MessageRef], folder: str) -> list[Moved]:
    """Add the target label and remove the source one; into TRASH with ``messages.trash``."""
    client = session._require()
    target = await gl.resolve(client, folder)
    if target.id in ("DRAFT", "SENT"):
        raise InputError(
            f"messages cannot be moved into {target.id}",
            field="folder",
            hint="Gmail puts a message there when it is saved as a draft or sent; "
            "use POST /v1/mailboxes/{id}/drafts or …/send.",
        )
    path = gl.path_of(target)
    found = await present(session, refs)
    moving = [ref for ref in refs if ref.epoch != target.id]
    if target.id == "TRASH":
        for ref in moving:
            await client.trash(ref.item)
    else:
        by_source: dict[str, list[str]] = {}
        for ref in moving:
            by_source.setdefault(ref.epoch, []).append(ref.item)
        for source_id, ids in by_source.items():
            remove = [source_id] if source_id else []
            if "TRASH" in found[next(r for r in moving if r.epoch == source_id)].label_ids:
                remove.append("TRASH")
            await client.batch_modify(ids, add=[target.id], remove=sorted(set(remove)))
    gl.forget(client)  # counts changed
    return [Moved(ref, MessageRef(path, target.id, ref.item)) for ref in refs]


async def move_items(session: GmailSession, items: Sequence[str], folder: str, *, source: str | None) -> None:
    """After-processing's move of ingested messages (ids of the watched label ``source``)."""
    client = session._require()
    target = await gl.resolve(client, folder)
    if not items or target.id == source:
        return
    if target.id == "TRASH":
        for item in items:
            await client.trash(item)
        return
    await client.batch_modify(list(items), add=[target.id], remove=[source] if source else [])


async def _draft_ids(session: GmailSession, message_ids: set[str]) -> dict[str, str]:
    """Message id -> draft id for the drafts among ``message_ids``."""
    wanted = set(message_ids)
    out: dict[str, str] = {}
    token: str | None = None
    while wanted - out.keys():
        page = await session._require().drafts_list(page_token=token, max_results=500)
        for draft in page.drafts:
            if draft.message_id in wanted:
                out[draft.message_id] = draft.id
        token = page.next_page_token
        if token is None:
            break
    return out


async def delete_messages(
    session: GmailSession, refs: Sequence[MessageRef], *, permanent: bool = False
) -> None:
    """To the trash (``messages.trash``); for good with ``permanent`` or when already in the
    trash (``batchDelete``; drafts with ``drafts.delete``)."""
    if not refs:
        return
    client = session._require()
    found = await present(session, refs)
    drafts = {m.id for m in found.values() if "DRAFT" in m.label_ids}
    for_good = [m.id for m in found.values() if m.id not in drafts and (permanent or "TRASH" in m.label_ids)]
    to_trash = [m.id for m in found.values() if m.id not in drafts and m.id not in for_good]
    if drafts and permanent:
        draft_ids = await _draft_ids(session, drafts)
        for message_id in drafts:
            if message_id in draft_ids:
                await client.draft_delete(draft_ids[message_id])
            else:  # a sent draft's message, or one another client turned into a message
                to_trash.append(message_id)
    else:
        to_trash.extend(drafts)
    for message_id in to_trash:
        await client.trash(message_id)
    if for_good:
        try:
            await client.batch_delete(for_good)
        except OAuthPermissionMissingError as exc:
            raise UnsupportedFeatureError(
                "Gmail deletes messages for good only with the full https://mail.google.com/ "
                "scope; this mailbox's grant has gmail.modify",
                hint="Delete without `permanent` (to the trash, which Gmail empties after 30 days), "
                "or have an operator add https://mail.google.com/ to the Google app's scopes and "
                "reconnect the mailbox.",
                server_said=exc.server_said,
            ) from exc
    gl.forget(client)


async def import_message(
    session: GmailSession,
    folder: str,
    raw: bytes,
    *,
    flags: Sequence[str] = (),
    received_at: datetime | None = None,
) -> MessageRef | None:
    """``messages.insert`` into ``folder`` (``drafts.create`` into DRAFT); its ref."""
    if not raw.strip():
        raise InputError("the message is empty", field="body", hint="Send the whole RFC 5322 source.")
    client = session._require()
    target = await gl.resolve(client, folder)
    wanted = {flag.lower() for flag in flags}
    if target.id == "DRAFT":
        _flag_labels(frozenset(wanted - {Flag.DRAFT, Flag.SEEN}), adding=True)  # refuses the rest
        draft = await client.draft_create(raw)
        gl.forget(client)
        return MessageRef(gl.path_of(target), target.id, draft.message.id)
    add, _ = _flag_labels(frozenset(wanted - {Flag.SEEN}), adding=True)
    label_ids = {target.id, *add}
    if Flag.SEEN not in wanted:
        label_ids.add("UNREAD")
    message = await client.insert(
        raw,
        sorted(label_ids),
        internal_date_source="dateHeader" if received_at is not None else "receivedTime",
    )
    gl.forget(client)
    return MessageRef(gl.path_of(target), target.id, message.id)


# ---------------------------------------------------------------------------- folders


async def list_folders(session: GmailSession) -> list[Folder]:
    """Every label that is a folder, with its counts (``labels.get`` per label, concurrently:
    the list itself has none)."""
    client = session._require()
    known = await gl.labels(client, fresh=True)
    shown = known.folders()
    if all(label.messages_total is not None for label in shown):
        return [gl.folder(label) for label in shown]
    counted = await asyncio.gather(*(client.label(label.id) for label in shown), return_exceptions=True)
    folders = []
    for label, counts in zip(shown, counted, strict=True):
        if isinstance(counts, FolderNotFoundError):
            continue  # deleted meanwhile
        if isinstance(counts, BaseException):
            raise counts
        folders.append(gl.folder(label, counts))
    return folders


async def folder_snapshot(session: GmailSession) -> list[Folder]:
    """The labels that are folders, without counts (one request)."""
    return [gl.folder(label) for label in (await gl.labels(session._require(), fresh=True)).folders()]


def _check_name(name: str) -> None:
    problem = None
    if not name.strip() or name != name.strip():
        problem = "is empty or starts or ends with a space"
    elif gl.DELIMITER in name:
        problem = "contains '/', which nests labels in Gmail"
    elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        problem = "contains a control character"
    if problem is not None:
        raise InputError(
            f"the label name {name[:60]!r} {problem}",
            field="name",
            hint="Give one level's name; put it under another label with `parent`.",
        )


def _refuse_system(label: Label, action: str) -> None:
    if label.type == "system":
        raise InputError(
            f"{label.id} is one of Gmail's system labels and cannot be {action}",
            field="path",
            hint="Only labels you created can be renamed or deleted.",
        )


async def _child_path(session: GmailSession, name: str, parent: str | None) -> str:
    _check_name(name)
    if not parent:
        return name
    label = await gl.resolve(session._require(), parent)
    if label.type == "system":
        raise InputError(f"Gmail's system label {label.id} cannot have nested labels", field="parent")
    return label.name + gl.DELIMITER + name


def _conflict(exc: ProviderError, path: str) -> Exception:
    """Gmail's 409 (or 400 "exists or conflicts") as :class:`FolderExistsError`; a refused
    name as 422 with Gmail's words."""
    said = (exc.server_said or "").lower()
    status = exc.details.get("provider_status")
    if status == 409 or "exists" in said or "conflict" in said:
        return FolderExistsError(f"label {path!r} already exists", folder=path)
    if status == 400:
        return InputError(f"Gmail refused the label name {path!r}: {exc.server_said}", field="name")
    return exc


async def create_folder(session: GmailSession, name: str, *, parent: str | None = None) -> Folder:
    """A user label ``parent/name`` (or ``name``)."""
    client = session._require()
    path = await _child_path(session, name, parent)
    if (await gl.labels(client, fresh=True)).find(path) is not None:
        raise FolderExistsError(f"label {path!r} already exists", folder=path)
    try:
        made = await client.create_label(path)
    except ProviderError as exc:
        raise _conflict(exc, path) from exc
    finally:
        gl.forget(client)
    return gl.folder(made, await client.label(made.id))


async def rename_folder(session: GmailSession, path: str, *, name: str, parent: str | None = None) -> Folder:
    """Rename a user label; its nested labels (``path/…``) move with it, as IMAP's RENAME does.
    ``parent`` ``""``: to the top level."""
    client = session._require()
    label = await gl.resolve(client, path)
    _refuse_system(label, "renamed")
    if parent is None:
        _check_name(name)
        here = label.name.rpartition(gl.DELIMITER)[0]
        target = here + gl.DELIMITER + name if here else name
    else:
        target = await _child_path(session, name, parent)
    if target != label.name:
        if target.startswith(label.name + gl.DELIMITER):
            raise InputError("a label cannot be moved under itself", field="parent")
        known = await gl.labels(client, fresh=True)
        if known.find(target) is not None:
            raise FolderExistsError(f"label {target!r} already exists", folder=target)
        children = [
            child
            for child in known.by_id.values()
            if child.type != "system" and child.name.startswith(label.name + "/")
        ]
        try:
            await client.patch_label(label.id, target)
            for child in children:
                await client.patch_label(child.id, target + child.name[len(label.name) :])
        except ProviderError as exc:
            raise _conflict(exc, target) from exc
        finally:
            gl.forget(client)
    return gl.folder(await client.label(label.id), None)


async def delete_folder(session: GmailSession, path: str) -> None:
    """Delete a user label (its messages stay, in their other labels or archived; nested labels
    stay, as IMAP keeps sub-folders)."""
    client = session._require()
    label = await gl.resolve(client, path)
    _refuse_system(label, "deleted")
    try:
        await client.delete_label(label.id)
    finally:
        gl.forget(client)
