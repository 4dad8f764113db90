"""Drafts: messages kept in the mailbox's drafts folder, on its server, where every mail client
of the account sees them — created, read, replaced, deleted and sent through mailport.

A draft is composed exactly as a send would be (:meth:`SendService.compose
<mailport.sending.service.SendService.compose>`: the From rule, reply/forward/attachment refs)
with a fresh Message-ID, and stored ``\\Draft \\Seen`` by :func:`~mailport.sending.sent_copy.store_draft`
(the folder found by role or name, created when missing, never stored twice). Bcc, which a sent
message never carries, stays in the draft's header so that sending it later reaches them.

IMAP cannot change a stored message: replacing a draft stores the new one first and then
expunges the old one, so a failure in between leaves two drafts rather than none. Sending a
draft queues its bytes as a raw send (``draft_ref`` set): the send worker deletes the draft
once the message is sent, so a send that fails keeps its draft.

Every ref given here must be in the drafts folder: a message of another folder is refused
(422) rather than deleted or sent by mistake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from email.utils import formataddr
from typing import Any

from mailport.clock import Clock, utc_now
from mailport.connectors.base import Connector, Feature, MessageRef
from mailport.connectors.folders import Role
from mailport.connectors.mail import DEFAULT_LIMIT, ListQuery, MessagePage
from mailport.errors import FolderNotFoundError, InputError, MessageNotFoundError
from mailport.mailboxes.access import MailAccess
from mailport.mailboxes.message_view import MessageView
from mailport.messages.headers import addresses
from mailport.sending import repository as repo
from mailport.sending.models import Queued, SendRequest
from mailport.sending.sent_copy import known_folder, store_draft
from mailport.sending.service import IDEMPOTENCY_HOURS, SendService
from mailport.store import Database

# Header fields a draft carries that the sent message must not: the draft's own Date (the
# send's time is written instead) and mail clients' draft bookkeeping.
DRAFT_ONLY_FIELDS = frozenset(
    {
        "date",
        "x-mozilla-draft-info",  # Thunderbird
        "x-uniform-type-identifier",  # Apple Mail: com.apple.mail-draft
        "x-apple-auto-saved",
        "x-apple-mail-remote-attachments",
    }
)
_FIELD = re.compile(rb"([!-9;-~]+)[ \t]*:")


@dataclass(frozen=True, slots=True)
class StoredDraft:
    """Where a draft was stored: its ``ref`` (None when the server did not tell), its
    Message-ID (without angle brackets) and the drafts folder's path."""

    ref: str | None
    message_id: str
    folder: str

    def to_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "message_id": self.message_id, "folder": self.folder}


@dataclass(frozen=True, slots=True)
class DraftPage:
    """A page of the drafts folder (``folder`` None: the mailbox has no drafts folder yet)."""

    page: MessagePage
    folder: str | None


class DraftService:
    """Drafts of a tenant's mailboxes, live on their servers (see the module docstring)."""

    def __init__(
        self, mail: MailAccess, sending: SendService, database: Database, *, clock: Clock = utc_now
    ) -> None:
        self._mail = mail
        self._sending = sending
        self._db = database
        self._clock = clock

    async def list(
        self, tenant_id: str, mailbox_id: str, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
    ) -> DraftPage:
        """The drafts folder, newest first; empty while the mailbox has none."""
        for fresh in (False, True):
            folder = await self._folder(tenant_id, mailbox_id, fresh=fresh)
            if folder is None:
                return DraftPage(MessagePage([], None), None)
            query = ListQuery(folder=folder, limit=limit, cursor=cursor)
            try:
                return DraftPage(await self._mail.list_messages(tenant_id, mailbox_id, query), folder)
            except FolderNotFoundError:  # renamed or deleted since this connection looked
                if fresh:
                    raise
        raise AssertionError("unreachable")

    async def _folder(self, tenant_id: str, mailbox_id: str, *, fresh: bool) -> str | None:
        async def look_up(connector: Connector) -> str | None:
            return await known_folder(connector, Role.DRAFTS, fresh=fresh)

        return await self._mail.read(tenant_id, mailbox_id, Feature.FOLDERS, look_up)

    async def create(self, tenant_id: str, mailbox_id: str, request: SendRequest) -> StoredDraft:
        """Compose ``request`` (as a send would be) and store it in the drafts folder."""
        raw, message_id = await self._compose(tenant_id, mailbox_id, request)
        async with self._mail.session(tenant_id, mailbox_id, Feature.FOLDERS) as connector:
            ref = await store_draft(connector, raw, message_id)
            folder = await known_folder(connector, Role.DRAFTS)
        assert folder is not None  # store_draft found or made it
        return StoredDraft(ref, message_id, folder)

    async def get(self, tenant_id: str, mailbox_id: str, ref: str, **view: Any) -> MessageView:
        """One draft, parsed (``view``: the options of :meth:`MailAccess.message`)."""
        await self._mail.read(tenant_id, mailbox_id, Feature.FOLDERS, lambda c: _check_draft(c, ref))
        return await self._mail.message(tenant_id, mailbox_id, ref, **view)

    async def replace(self, tenant_id: str, mailbox_id: str, ref: str, request: SendRequest) -> StoredDraft:
        """Store the new version, then expunge the old one: the new version's ref (404
        ``message_not_found``, nothing stored, when the old one is gone)."""
        location = MessageRef.decode(ref)
        raw, message_id = await self._compose(tenant_id, mailbox_id, request)
        async with self._mail.session(tenant_id, mailbox_id, Feature.FOLDERS) as connector:
            folder = await _check_draft(connector, ref)
            await connector.fetch_message(location)  # gone: 404 before anything is stored
            new = await store_draft(connector, raw, message_id)
            try:
                await connector.delete_messages([location], permanent=True)
            except MessageNotFoundError:
                pass  # deleted meanwhile by another client: the new version stands
        return StoredDraft(new, message_id, folder)

    async def delete(self, tenant_id: str, mailbox_id: str, ref: str) -> None:
        """Expunge the draft for good (404 ``message_not_found`` when it is gone)."""
        location = MessageRef.decode(ref)
        async with self._mail.session(tenant_id, mailbox_id, Feature.FOLDERS) as connector:
            await _check_draft(connector, ref)
            await connector.delete_messages([location], permanent=True)

    async def send(
        self, tenant_id: str, mailbox_id: str, ref: str, *, idempotency_key: str | None = None
    ) -> Queued:
        """Queue the draft as it is stored (its own Date and clients' draft headers left out);
        the send worker deletes it once sent. A retry with the same Idempotency-Key after the
        draft was sent and deleted answers the first send."""
        await self._mail.read(tenant_id, mailbox_id, Feature.FOLDERS, lambda c: _check_draft(c, ref))
        try:
            raw = await self._mail.raw(tenant_id, mailbox_id, ref)
        except MessageNotFoundError:
            replay = await self._sent_with_key(tenant_id, mailbox_id, idempotency_key)
            if replay is None:
                raise
            return replay
        request = SendRequest(raw=sendable(raw), draft_ref=ref)
        return await self._sending.send(tenant_id, mailbox_id, request, idempotency_key=idempotency_key)

    async def _sent_with_key(self, tenant_id: str, mailbox_id: str, key: str | None) -> Queued | None:
        """The send ``key`` names, when it is recent: the draft is gone because it was sent."""
        if key is None:
            return None
        async with self._db.connect() as conn:
            found = await repo.by_key(conn, mailbox_id, key)
        if found is None or found.tenant_id != tenant_id:
            return None
        if found.created_at <= self._clock() - timedelta(hours=IDEMPOTENCY_HOURS):
            return None
        return Queued(await self._sending.get(tenant_id, mailbox_id, found.id), replayed=True)

    async def _compose(self, tenant_id: str, mailbox_id: str, request: SendRequest) -> tuple[bytes, str]:
        composed = await self._sending.compose(tenant_id, mailbox_id, request)
        return with_bcc(composed.raw, _bcc_fields(request)), composed.message_id


async def _check_draft(connector: Connector, ref: str) -> str:
    """The drafts folder's path, when ``ref`` is a message of it; 422 otherwise."""
    location = MessageRef.decode(ref)
    folder = await known_folder(connector, Role.DRAFTS)
    if folder != location.scope:  # perhaps renamed since this connection looked
        folder = await known_folder(connector, Role.DRAFTS, fresh=True)
    if folder is None or location.scope != folder:
        where = "this mailbox has no drafts folder" if folder is None else f"the drafts folder is {folder!r}"
        raise InputError(
            f"{ref[:60]} is a message of {location.scope!r}, not a draft ({where})",
            field="ref",
            hint="Use a ref from GET /v1/mailboxes/{id}/drafts; to send any other message, "
            "use POST /v1/mailboxes/{id}/send with its raw source.",
        )
    return folder


# --------------------------------------------------------------------------- bytes


def _bcc_fields(request: SendRequest) -> list[bytes]:
    """The Bcc header field(s) the draft keeps: the structured request's, or the raw one's."""
    if request.raw is not None:
        return [field for name, field in _fields(_head(request.raw)) if name == "bcc"]
    if not request.bcc:
        return []
    written = [_written(text) for text in request.bcc]
    return [("Bcc: " + ",\r\n ".join(written) + "\r\n").encode()]  # folded: a line per address


def _written(text: str) -> str:
    found, _ = addresses(text)
    if len(found) != 1 or not found[0].email.isascii():
        return text  # as the caller wrote it (compose accepted it)
    return formataddr((found[0].name, found[0].email), charset="utf-8")


def with_bcc(raw: bytes, fields: list[bytes]) -> bytes:
    """``raw`` with ``fields`` added at the end of its header block."""
    if not fields:
        return raw
    head = _head(raw)
    return head + b"".join(fields) + raw[len(head) :]


def sendable(raw: bytes) -> bytes:
    """A stored draft's bytes as they are sent: without :data:`DRAFT_ONLY_FIELDS` (the
    send's own Date is written when it is queued)."""
    head = _head(raw)
    kept = [field for name, field in _fields(head) if name not in DRAFT_ONLY_FIELDS]
    return b"".join(kept) + raw[len(head) :]


def _head(raw: bytes) -> bytes:
    """The header block, its last line's CRLF included (the blank line not)."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
        return raw if end < 0 else raw[: end + 1]
    return raw[: end + 2]


def _fields(head: bytes) -> list[tuple[str, bytes]]:
    """Header fields with their continuation lines, and their lower-cased names."""
    fields: list[tuple[str, bytes]] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            name, field = fields[-1]
            fields[-1] = (name, field + line)
            continue
        match = _FIELD.match(line)
        fields.append((match.group(1).decode("ascii").lower() if match else "", line))
    return fields
