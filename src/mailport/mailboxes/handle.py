"""One tenant's mailbox as a Python object: ``box = mp.mailbox(tenant_id, mailbox_id)``.

The library's typed face of :class:`~mailport.mailboxes.access.MailAccess`: every method is one
call of that service (tenant check, feature check, a pooled connection, error mapping), so the
library, the CLI and the web dashboard behave exactly like the API. What a caller passes is
checked by the API's own request schemas (:mod:`mailport.mailboxes.mail_schemas`: one-line
search terms, flags that are IMAP atoms, folder paths without wildcards …), so a value the API
refuses with 422 is refused here with the same :class:`~mailport.errors.InputError`. It adds
only what a Python caller wants and an HTTP client does not: refs given as strings,
:class:`MessageRef` or the listing items themselves, and :meth:`MailboxHandle.messages`, which
follows the cursors.
"""

from __future__ import annotations

import asyncio
import base64
import mimetypes
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mailport.connectors.base import MessageRef
from mailport.connectors.folders import Folder
from mailport.connectors.mail import (
    DEFAULT_LIMIT,
    ListQuery,
    MessagePage,
    MessageSummary,
    Moved,
    SearchQuery,
)
from mailport.errors import InputError
from mailport.mailboxes.access import MailAccess
from mailport.mailboxes.mail_schemas import (
    FlagsRequest,
    FolderCreate,
    FolderRename,
    MoveRequest,
    SearchRequest,
    utc,
)
from mailport.mailboxes.message_view import HtmlMode, MessageView
from mailport.messages.model import Attachment
from mailport.sending.draft import OutgoingAttachment
from mailport.sending.models import (
    FINAL,
    AttachmentRef,
    Forward,
    OutboundMessage,
    OutboundPage,
    ReplyTo,
    SendState,
)
from mailport.sending.schemas import SendIn, check_idempotency_key
from mailport.sending.service import SendService
from mailport.store.pagination import MAX_LIMIT as OUTBOX_MAX_LIMIT

M = TypeVar("M", bound=BaseModel)

RefLike = str | MessageRef | MessageSummary
"""A message as the handle takes it: the public ``ref_…`` string, a :class:`MessageRef`, or a
listing item."""

AttachmentLike = OutgoingAttachment | AttachmentRef | Path
"""An attachment to send: bytes with a name and type, an attachment of a message in the
mailbox, or a file (its content type guessed from its name)."""


def ref_string(ref: RefLike) -> str:
    """The public ``ref_…`` string of any :data:`RefLike`."""
    if isinstance(ref, MessageSummary):
        return ref.ref.encode()
    if isinstance(ref, MessageRef):
        return ref.encode()
    return ref


def _refs(refs: RefLike | Iterable[RefLike]) -> list[str]:
    if isinstance(refs, str | MessageRef | MessageSummary):
        return [ref_string(refs)]
    found = [ref_string(ref) for ref in refs]
    if not found:
        raise InputError("no message given", field="refs", hint="Pass at least one message ref.")
    return found


def checked(model: type[M], data: dict[str, Any]) -> M:
    """``data`` validated as the API validates a request body; its first problem as
    :class:`~mailport.errors.InputError` (``field: message``), like the API's 422."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "input"
        raise InputError(f"{field}: {first['msg'].removeprefix('Value error, ')}", field=field) from None


def _search(query: SearchQuery | None, criteria: dict[str, Any]) -> SearchQuery:
    built = replace(query, **criteria) if query is not None else SearchQuery(**criteria)
    data = {("from" if name == "from_" else name): value for name, value in asdict(built).items()}
    return checked(SearchRequest, {k: v for k, v in data.items() if v is not None}).query()


def attachment_json(item: AttachmentLike) -> dict[str, Any]:
    """An attachment as the send API's JSON takes it (checked there like any request)."""
    if isinstance(item, AttachmentRef):
        return {"ref": item.ref, "attachment_id": item.attachment_id, "filename": item.filename}
    if isinstance(item, Path):
        guessed, encoding = mimetypes.guess_type(item.name)
        content_type = guessed if guessed and encoding is None else "application/octet-stream"
        try:
            data = item.read_bytes()
        except OSError as exc:
            raise InputError(
                f"cannot read the attachment {str(item)!r}: {exc.strerror or exc}", field="attachments"
            ) from None
        item = OutgoingAttachment(filename=item.name, content_type=content_type, data=data)
    return {
        "filename": item.filename,
        "content_type": item.content_type,
        "content_base64": base64.b64encode(item.data).decode("ascii"),
        "content_id": item.content_id,
    }


def _reply_json(reply: RefLike | ReplyTo) -> dict[str, Any]:
    if isinstance(reply, ReplyTo):
        return {"ref": reply.ref, "all": reply.all, "quote": reply.quote}
    return {"ref": ref_string(reply)}


def _forward_json(forward: RefLike | Forward) -> dict[str, Any]:
    if isinstance(forward, Forward):
        return {"ref": forward.ref, "inline": forward.inline}
    return {"ref": ref_string(forward)}


@dataclass(frozen=True, slots=True)
class MailboxHandle:
    """Folders and messages of one mailbox of one tenant, live from its server, and what it
    sends (``sending``: the service the API's send routes call)."""

    access: MailAccess
    tenant_id: str
    mailbox_id: str
    sending: SendService | None = None

    def _sending(self) -> SendService:
        if self.sending is None:
            raise RuntimeError("this handle was made without the send service: use mailport.open()")
        return self.sending

    # --- folders

    async def folders(self) -> list[Folder]:
        """Every folder with its role (``inbox``, ``sent`` …) and counts."""
        return await self.access.folders(self.tenant_id, self.mailbox_id)

    async def create_folder(self, name: str, *, parent: str | None = None) -> Folder:
        """A new folder ``name`` under ``parent`` (a path), or at the top of the namespace."""
        body = checked(FolderCreate, {"name": name, "parent": parent})
        return await self.access.create_folder(self.tenant_id, self.mailbox_id, body.name, parent=body.parent)

    async def rename_folder(self, path: str, *, name: str, parent: str | None = None) -> Folder:
        body = checked(FolderRename, {"name": name, "parent": parent})
        return await self.access.rename_folder(
            self.tenant_id, self.mailbox_id, path, name=body.name, parent=body.parent
        )

    async def delete_folder(self, path: str) -> None:
        await self.access.delete_folder(self.tenant_id, self.mailbox_id, path)

    # --- listing and searching

    async def page(
        self,
        folder: str = "INBOX",
        *,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
        unseen: bool | None = None,
        since: datetime | None = None,
    ) -> MessagePage:
        """One page, newest first; pass its ``next_cursor`` back for the next."""
        folder = checked(MoveRequest, {"folder": folder}).folder
        if cursor is not None:
            cursor = checked(SearchRequest, {"cursor": cursor}).cursor
        query = ListQuery(folder=folder, limit=limit, cursor=cursor, unseen=unseen, since=utc(since))
        return await self.access.list_messages(self.tenant_id, self.mailbox_id, query)

    async def messages(
        self,
        folder: str = "INBOX",
        *,
        unseen: bool | None = None,
        since: datetime | None = None,
        page_size: int = DEFAULT_LIMIT,
        limit: int | None = None,
    ) -> AsyncIterator[MessageSummary]:
        """Every message of ``folder`` (at most ``limit``), newest first, page after page.

        A page is one server call; mail that arrives meanwhile neither repeats nor hides an
        item (the cursors mark where a page ended, not an offset).
        """
        cursor: str | None = None
        given = 0
        while True:
            page = await self.page(folder, limit=page_size, cursor=cursor, unseen=unseen, since=since)
            for item in page.items:
                if limit is not None and given >= limit:
                    return
                yield item
                given += 1
            if page.next_cursor is None or (limit is not None and given >= limit):
                return
            cursor = page.next_cursor

    async def search(self, query: SearchQuery | None = None, /, **criteria: Any) -> MessagePage:
        """One page of the messages matching every criterion (``SearchQuery``'s fields:
        ``from_``, ``subject``, ``text``, ``since``, ``seen`` …, or a whole ``query``)."""
        return await self.access.search(self.tenant_id, self.mailbox_id, _search(query, criteria))

    async def matches(
        self, query: SearchQuery | None = None, /, **criteria: Any
    ) -> AsyncIterator[MessageSummary]:
        """Every match of :meth:`search`, page after page."""
        built = _search(query, criteria)
        while True:
            page = await self.access.search(self.tenant_id, self.mailbox_id, built)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            built = replace(built, cursor=page.next_cursor)

    # --- one message

    async def message(
        self,
        ref: RefLike,
        *,
        html: HtmlMode | str = HtmlMode.SANITIZED,
        remote_images: bool = False,
        attachment_url: Callable[[int], str] | None = None,
        links_in_new_tab: bool = False,
    ) -> MessageView:
        """The message parsed (``.message``), its HTML sanitized for embedding (``.html``)
        unless ``html`` is ``"original"`` or ``"none"``."""
        return await self.access.message(
            self.tenant_id,
            self.mailbox_id,
            ref_string(ref),
            html=html,
            remote_images=remote_images,
            attachment_url=attachment_url,
            links_in_new_tab=links_in_new_tab,
        )

    async def raw(self, ref: RefLike) -> bytes:
        """The message's whole source (RFC 5322 bytes)."""
        return await self.access.raw(self.tenant_id, self.mailbox_id, ref_string(ref))

    async def attachment(self, ref: RefLike, index: int) -> tuple[Attachment, bytes]:
        """Attachment ``index`` (numbered as in the parsed message) and its decoded content."""
        return await self.access.attachment(self.tenant_id, self.mailbox_id, ref_string(ref), index)

    async def thread(self, key: str) -> list[MessageSummary]:
        """The conversation ``key`` (a listing item's ``thread_key``), oldest first, across the
        inbox and the sent folder."""
        return await self.access.thread_by_key(self.tenant_id, self.mailbox_id, key)

    # --- actions

    async def flag(
        self,
        refs: RefLike | Iterable[RefLike],
        *,
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
        add_labels: Iterable[str] = (),
        remove_labels: Iterable[str] = (),
    ) -> None:
        """Set and clear flags (``seen``, ``flagged``, ``answered``, ``draft``, or keywords)."""
        change = checked(
            FlagsRequest,
            {
                "add": list(add),
                "remove": list(remove),
                "add_labels": list(add_labels),
                "remove_labels": list(remove_labels),
            },
        ).change()
        await self.access.update_flags(self.tenant_id, self.mailbox_id, _refs(refs), change)

    async def mark_seen(self, refs: RefLike | Iterable[RefLike]) -> None:
        await self.flag(refs, add=("seen",))

    async def mark_unseen(self, refs: RefLike | Iterable[RefLike]) -> None:
        await self.flag(refs, remove=("seen",))

    async def move(self, refs: RefLike | Iterable[RefLike], folder: str) -> list[Moved]:
        """Move to ``folder`` (a path); each :class:`Moved` tells the new ref where known."""
        target = checked(MoveRequest, {"folder": folder}).folder
        return await self.access.move(self.tenant_id, self.mailbox_id, _refs(refs), target)

    async def delete(self, refs: RefLike | Iterable[RefLike], *, permanent: bool = False) -> None:
        """To the folder with the ``trash`` role, or expunged for good with ``permanent``."""
        await self.access.delete(self.tenant_id, self.mailbox_id, _refs(refs), permanent=permanent)

    async def import_message(
        self,
        raw: bytes,
        *,
        folder: str = "INBOX",
        flags: Sequence[str] = (),
        received_at: datetime | None = None,
    ) -> MessageRef | None:
        """Store ``raw`` in ``folder``; its ref when the server tells it (UIDPLUS)."""
        if flags:
            flags = checked(FlagsRequest, {"add": list(flags)}).add
        folder = checked(MoveRequest, {"folder": folder}).folder
        return await self.access.import_message(
            self.tenant_id, self.mailbox_id, folder, raw, flags=flags, received_at=received_at
        )

    # --- sending

    async def send(
        self,
        *,
        to: Sequence[str] = (),
        cc: Sequence[str] = (),
        bcc: Sequence[str] = (),
        from_: str | None = None,
        reply_to: Sequence[str] = (),
        subject: str | None = None,
        text: str | None = None,
        html: str | None = None,
        attachments: Sequence[AttachmentLike] = (),
        headers: Mapping[str, str] | None = None,
        reply: RefLike | ReplyTo | None = None,
        forward: RefLike | Forward | None = None,
        raw: bytes | None = None,
        send_at: datetime | None = None,
        sent_copy: bool | None = None,
        idempotency_key: str | None = None,
    ) -> OutboundMessage:
        """Queue a message, as ``POST /v1/mailboxes/{id}/send`` does: the structured fields, or
        ``raw`` (RFC 5322 bytes) alone. The send worker of ``mailport serve`` or ``mailport
        worker`` sends it; :meth:`wait_for_send` waits for that. A repeated ``idempotency_key``
        with the same message returns the first send and queues nothing."""
        structured: dict[str, Any] = {
            "from": from_,
            "to": list(to),
            "cc": list(cc),
            "bcc": list(bcc),
            "reply_to": list(reply_to),
            "subject": subject,
            "text": text,
            "html": html,
            "attachments": [attachment_json(item) for item in attachments],
            "headers": dict(headers or {}),
            "reply": _reply_json(reply) if reply is not None else None,
            "forward": _forward_json(forward) if forward is not None else None,
        }
        data = {name: value for name, value in structured.items() if value not in (None, [], {})}
        if raw is not None:
            data["raw"] = base64.b64encode(raw).decode("ascii")
        data.update(
            {
                name: value
                for name, value in (("send_at", send_at), ("sent_copy", sent_copy))
                if value is not None
            }
        )
        body = checked(SendIn, data)
        if idempotency_key is not None:
            try:
                check_idempotency_key(idempotency_key)
            except ValueError as exc:
                raise InputError(f"idempotency_key: {exc}", field="idempotency_key") from None
        queued = await self._sending().send(
            self.tenant_id, self.mailbox_id, body.to_request(), idempotency_key=idempotency_key
        )
        return queued.send

    async def outbox(
        self, *, state: SendState | str | None = None, limit: int = 50, cursor: str | None = None
    ) -> OutboundPage:
        """One page of the outbound queue, newest first (``next_cursor`` for the next)."""
        if isinstance(state, str) and not isinstance(state, SendState):
            try:
                state = SendState(state)
            except ValueError:
                names = ", ".join(s.value for s in SendState)
                raise InputError(f"state: one of {names}", field="state") from None
        if not 1 <= limit <= OUTBOX_MAX_LIMIT:
            raise InputError(f"limit: 1 to {OUTBOX_MAX_LIMIT}", field="limit")
        return await self._sending().list(
            self.tenant_id, self.mailbox_id, state=state, limit=limit, cursor=cursor
        )

    async def send_status(self, send_id: str) -> OutboundMessage:
        """One send of the outbound queue (``send_not_found`` for another mailbox's)."""
        return await self._sending().get(self.tenant_id, self.mailbox_id, send_id)

    async def cancel_send(self, send_id: str) -> OutboundMessage:
        """Cancel a scheduled or queued send (``send_not_cancellable`` once it is being sent)."""
        return await self._sending().cancel(self.tenant_id, self.mailbox_id, send_id)

    async def wait_for_send(
        self, send_id: str, *, timeout: float = 60.0, interval: float = 0.2
    ) -> OutboundMessage:
        """The send once it is sent, failed or cancelled, or as it is after ``timeout`` seconds
        (its state then says it is not done)."""
        deadline = time.monotonic() + timeout
        while True:
            send = await self.send_status(send_id)
            if send.state in FINAL or time.monotonic() >= deadline:
                return send
            await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
