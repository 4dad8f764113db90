"""Queueing sends, and reading and cancelling the outbound queue: the one service the API, the
CLI, the web pages and the library call (:attr:`mailport.services.Services.sending`).

``send`` turns a :class:`~mailport.sending.models.SendRequest` into bytes (composing a
structured request, resolving reply/forward/attachment refs through
:class:`~mailport.mailboxes.access.MailAccess`, or preparing a raw one), checks the From
address against the mailbox and its aliases, applies the Idempotency-Key rule, and inserts one
``outbound_messages`` row; the send worker (:mod:`mailport.sending.worker`) does the rest.

Idempotency: a key is scoped to its mailbox for 24 hours. The request's hash
(:func:`request_hash`) is stored beside it: the same hash answers the first send again
(``replayed``, nothing queued); another hash is 409 ``idempotency_key_reused``; an older key is
cleared from its send and the key starts afresh. Two identical requests racing each other are
settled by the unique constraint on (mailbox, key): the loser reads the winner's row.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from mailport.clock import Clock, utc_now
from mailport.connectors.base import MessageRef
from mailport.errors import (
    AttachmentNotFoundError,
    IdempotencyKeyReusedError,
    InputError,
    InvalidEmailError,
    MessageSourceExpiredError,
    NotFoundError,
    RawSourceNotStoredError,
    SenderNotAllowedError,
    SendNotCancellableError,
    SendNotFoundError,
    SmtpNotConfiguredError,
)
from mailport.mailboxes.access import MailAccess
from mailport.mailboxes.models import Mailbox
from mailport.mailboxes.service import MailboxService
from mailport.messages import Message, attachment_content, parse_message
from mailport.messages.headers import addresses, decode_words, msg_ids
from mailport.messages.model import Address
from mailport.sending import repository as repo
from mailport.sending.compose import compose, prepare_raw
from mailport.sending.draft import Composed, Draft, OutgoingAttachment
from mailport.sending.models import (
    CANCELLABLE,
    AttachmentRef,
    OutboundMessage,
    OutboundPage,
    Queued,
    SendRequest,
    SendState,
    SentCopyMode,
    SentCopyState,
)
from mailport.sending.reply import forward_draft, reply_draft
from mailport.sending.transport import transport_keys
from mailport.store import Database
from mailport.store.ids import new_id, plausible_id
from mailport.store.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor

IDEMPOTENCY_HOURS = 24
MAX_SCHEDULE_DAYS = 366  # send_at at most a year ahead
_KEY = re.compile(r"[!-~]{1,255}")  # visible ASCII


class SendService:
    def __init__(
        self,
        database: Database,
        mailboxes: MailboxService,
        mail: MailAccess,
        *,
        clock: Clock = utc_now,
        wake: Callable[[], None] | None = None,  # tells this process's send worker at once
    ) -> None:
        self._db = database
        self._mailboxes = mailboxes
        self._mail = mail
        self._clock = clock
        self._wake = wake

    async def send(
        self, tenant_id: str, mailbox_id: str, request: SendRequest, *, idempotency_key: str | None = None
    ) -> Queued:
        """Queue one message. The same key with the same request within 24 h returns the first
        send (``replayed``) and queues nothing; with another request,
        :class:`~mailport.errors.IdempotencyKeyReusedError`."""
        mailbox = await self._mailboxes.get(tenant_id, mailbox_id)
        if mailbox.smtp is None and mailbox.connector not in transport_keys():  # an API sends itself
            raise SmtpNotConfiguredError(f"mailbox {mailbox_id} has no SMTP server settings")
        now = self._clock()
        send_at = _send_at(request.send_at, now)
        digest = None
        if idempotency_key is not None:
            if not _KEY.fullmatch(idempotency_key):
                raise InputError(
                    "Idempotency-Key must be 1 to 255 visible ASCII characters.", field="idempotency_key"
                )
            digest = request_hash(request)
            replay = await self._replay(tenant_id, mailbox_id, idempotency_key, digest, now)
            if replay is not None:
                return replay
        composed = await self._compose(mailbox, request)
        new = repo.NewSend(
            id=new_id("snd"),
            tenant_id=tenant_id,
            mailbox_id=mailbox_id,
            state=SendState.SCHEDULED if send_at is not None else SendState.QUEUED,
            composed=composed,
            subject=_subject(composed.raw),
            in_reply_to=_in_reply_to(composed.raw),
            idempotency_key=idempotency_key,
            request_hash=digest,
            send_at=send_at,
            next_attempt_at=None if send_at is not None else now,
            sent_copy=_sent_copy(mailbox, request),
            draft_ref=request.draft_ref,
            now=now,
        )
        try:
            async with self._db.transaction() as conn:
                await repo.insert(conn, new)
        except IntegrityError:
            if idempotency_key is None or digest is None:
                raise
            # a concurrent request with the same key won the insert: answer what it queued
            replay = await self._replay(tenant_id, mailbox_id, idempotency_key, digest, now)
            if replay is None:
                raise
            return replay
        if self._wake is not None:
            self._wake()
        return Queued(await self.get(tenant_id, mailbox_id, new.id))

    async def _replay(
        self, tenant_id: str, mailbox_id: str, key: str, digest: str, now: datetime
    ) -> Queued | None:
        """The send ``key`` already names (None: the key is free, expired ones are cleared)."""
        async with self._db.transaction() as conn:
            found = await repo.by_key(conn, mailbox_id, key)
            if found is None:
                return None
            if found.created_at <= now - timedelta(hours=IDEMPOTENCY_HOURS):
                await repo.clear_key(conn, found.id, key)
                return None
            if found.request_hash != digest or found.tenant_id != tenant_id:
                raise IdempotencyKeyReusedError(
                    f"Idempotency-Key {key!r} was used for send {found.id} with a different request"
                )
            message = await repo.get(conn, tenant_id, mailbox_id, found.id)
        assert message is not None
        return Queued(message, replayed=True)

    async def compose(self, tenant_id: str, mailbox_id: str, request: SendRequest) -> Composed:
        """The request's bytes and envelope, as :meth:`send` would queue them: the From address
        checked, reply/forward/attachment refs resolved, composed (or the raw form prepared)."""
        mailbox = await self._mailboxes.get(tenant_id, mailbox_id)
        return await self._compose(mailbox, request)

    async def _compose(self, mailbox: Mailbox, request: SendRequest) -> Composed:
        now = self._clock()
        if request.raw is not None:
            composed = await asyncio.to_thread(prepare_raw, request.raw, now=now)
            _check_sender(mailbox, composed.sender)
            return composed
        if request.reply is not None and request.forward is not None:
            raise InputError("A message is either a reply or a forward, not both.")
        from_ = self._from(mailbox, request.from_)
        to, cc, bcc = _parse(request.to, "to"), _parse(request.cc, "cc"), _parse(request.bcc, "bcc")
        attachments = await self._attachments(mailbox, request.attachments)
        if request.reply is not None:
            original = await self._original(mailbox, request.reply.ref)
            draft = reply_draft(
                original,
                from_=from_,
                own_addresses=(mailbox.email, *mailbox.settings.sending.aliases),
                reply_all=request.reply.all,
                text=request.text,
                html=request.html,
                quote=request.reply.quote,
                attachments=attachments,
                headers=request.headers,
            )
            # named recipients replace the answered ones; Bcc is added
            draft = dataclasses.replace(draft, to=to or draft.to, cc=cc or draft.cc, bcc=bcc)
        elif request.forward is not None:
            original = await self._original(mailbox, request.forward.ref)
            draft = forward_draft(
                original,
                from_=from_,
                to=to,
                cc=cc,
                bcc=bcc,
                text=request.text,
                html=request.html,
                inline=request.forward.inline,
                attachments=attachments,
                headers=request.headers,
            )
        else:
            draft = Draft(
                from_=from_,
                to=to,
                cc=cc,
                bcc=bcc,
                subject=request.subject or "",
                text=request.text,
                html=request.html,
                attachments=attachments,
                headers=request.headers,
            )
        if request.subject is not None:
            draft = dataclasses.replace(draft, subject=request.subject)
        draft = dataclasses.replace(draft, reply_to=_parse(request.reply_to_addresses, "reply_to"))
        return await asyncio.to_thread(compose, draft, now=now)

    def _from(self, mailbox: Mailbox, written: str | None) -> Address:
        if written is None:
            return Address(name=mailbox.settings.from_name or "", email=mailbox.email)
        address = _one(written, "from")
        _check_sender(mailbox, address.email)
        return address

    async def _original(self, mailbox: Mailbox, ref: str) -> Message:
        """The message answered or forwarded, parsed: live (``ref_…``) or ingested (``msg_…``)."""
        raw = await self._raw(mailbox, ref)
        return await asyncio.to_thread(parse_message, raw, mailbox_id=mailbox.id, folder="")

    async def _raw(self, mailbox: Mailbox, ref: str) -> bytes:
        if ref.startswith(MessageRef.PREFIX):
            return await self._mail.raw(mailbox.tenant_id, mailbox.id, ref)
        if not plausible_id(ref):
            raise NotFoundError(f"no message {ref[:60]!r} in mailbox {mailbox.id}")
        from mailport.sync import repository as stored

        async with self._db.connect() as conn:
            row = await stored.get_message(conn, mailbox.tenant_id, mailbox.id, ref)
        if row is None:
            raise NotFoundError(
                f"no message {ref!r} in mailbox {mailbox.id}",
                hint="Use a message's `ref` (ref_…) or the `id` of its message.received event (msg_…).",
            )
        if row.raw is None and not row.oversized and row.raw_purged_at is not None:
            raise MessageSourceExpiredError(
                f"the raw source of message {ref} expired on {row.raw_purged_at:%Y-%m-%d} (retention period)"
            )
        if row.raw is None:
            raise RawSourceNotStoredError(f"message {ref} ({row.size} bytes) was ingested headers only")
        return bytes(row.raw)

    async def _attachments(
        self, mailbox: Mailbox, items: tuple[OutgoingAttachment | AttachmentRef, ...]
    ) -> tuple[OutgoingAttachment, ...]:
        out: list[OutgoingAttachment] = []
        sources: dict[str, bytes] = {}
        for item in items:
            if isinstance(item, OutgoingAttachment):
                out.append(item)
                continue
            if item.ref not in sources:
                sources[item.ref] = await self._raw(mailbox, item.ref)
            out.append(await _attachment(sources[item.ref], item))
        return tuple(out)

    async def list(
        self,
        tenant_id: str,
        mailbox_id: str,
        *,
        state: SendState | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> OutboundPage:
        """Newest first."""
        await self._mailboxes.get(tenant_id, mailbox_id)  # the tenant's, or 404
        before = decode_cursor(cursor)
        limit = max(1, min(limit, MAX_LIMIT))
        async with self._db.connect() as conn:
            items = await repo.page(
                conn, tenant_id, mailbox_id, state=state, limit=limit + 1, before_id=before
            )
        more = len(items) > limit
        items = items[:limit]
        return OutboundPage(items=items, next_cursor=encode_cursor(items[-1].id) if more else None)

    async def get(self, tenant_id: str, mailbox_id: str, send_id: str) -> OutboundMessage:
        if not (plausible_id(mailbox_id) and plausible_id(send_id)):
            raise SendNotFoundError(f"no send {send_id[:60]!r} in mailbox {mailbox_id[:60]!r}")
        async with self._db.connect() as conn:
            found = await repo.get(conn, tenant_id, mailbox_id, send_id)
        if found is None:
            raise SendNotFoundError(f"no send {send_id!r} in mailbox {mailbox_id!r}")
        return found

    async def cancel(self, tenant_id: str, mailbox_id: str, send_id: str) -> OutboundMessage:
        """Cancel a scheduled or queued send (:class:`~mailport.errors.SendNotCancellableError`
        otherwise)."""
        current = await self.get(tenant_id, mailbox_id, send_id)
        if current.state in CANCELLABLE:
            async with self._db.transaction() as conn:
                done = await repo.cancel(conn, tenant_id, mailbox_id, send_id, now=self._clock())
            if done:
                return await self.get(tenant_id, mailbox_id, send_id)
            current = await self.get(tenant_id, mailbox_id, send_id)  # a worker took it meanwhile
        raise SendNotCancellableError(
            f"send {send_id} is {current.state.value}; it can no longer be cancelled"
        )


# --- helpers ------------------------------------------------------------------------------


def _send_at(send_at: datetime | None, now: datetime) -> datetime | None:
    """None (send now) for a time already past; refused beyond a year."""
    if send_at is None:
        return None
    if send_at.tzinfo is None:
        raise InputError("send_at needs a time zone (e.g. 2026-12-06T09:00:00Z).", field="send_at")
    if send_at <= now:
        return None
    if send_at > now + timedelta(days=MAX_SCHEDULE_DAYS):
        raise InputError("send_at may be at most one year ahead.", field="send_at")
    return send_at


def _sent_copy(mailbox: Mailbox, request: SendRequest) -> SentCopyState:
    """``skipped`` when the request or the mailbox says no; else ``pending`` (the worker skips
    it where the provider files the copy itself, unless the mailbox says ``always``)."""
    if request.sent_copy is False or mailbox.settings.sending.sent_copy is SentCopyMode.NEVER:
        return SentCopyState.SKIPPED
    return SentCopyState.PENDING


def _key(email: str) -> str:
    return email.strip().lower()


def _check_sender(mailbox: Mailbox, email: str) -> None:
    allowed = {_key(mailbox.email), *(_key(a) for a in mailbox.settings.sending.aliases)}
    if _key(email) not in allowed:
        raise SenderNotAllowedError(
            f"{email!r} is neither the mailbox's address nor one of its aliases", field="from"
        )


def _one(written: str, name: str) -> Address:
    found, _ = addresses(written)
    usable = [a for a in found if "@" in a.email]
    if len(usable) != 1 or len(found) != 1:
        raise InvalidEmailError(f"{name}: {written[:200]!r} is not one email address.", field=name)
    return usable[0]


def _parse(values: tuple[str, ...], name: str) -> tuple[Address, ...]:
    return tuple(_one(value, name) for value in values)


async def _attachment(raw: bytes, ref: AttachmentRef) -> OutgoingAttachment:
    if not ref.attachment_id.isdigit():
        raise AttachmentNotFoundError(f"message {ref.ref} has no attachment {ref.attachment_id[:40]!r}")
    try:
        meta, data = await asyncio.to_thread(attachment_content, raw, int(ref.attachment_id))
    except NotFoundError as exc:
        raise AttachmentNotFoundError(f"message {ref.ref} has no attachment {ref.attachment_id}") from exc
    return OutgoingAttachment(
        filename=ref.filename or meta.filename or f"attachment-{ref.attachment_id}",
        content_type=meta.content_type or "application/octet-stream",
        data=data,
    )


_SUBJECT = re.compile(rb"^subject:[ \t]*(.*(?:\r\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
_IN_REPLY_TO = re.compile(rb"^in-reply-to:[ \t]*(.*(?:\r\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


def _head(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    return raw if end < 0 else raw[: end + 2]


def _subject(raw: bytes) -> str | None:
    """The composed Subject, decoded (for the outbox listing and the events)."""
    match = _SUBJECT.search(_head(raw))
    if match is None:
        return None
    value = re.sub(r"\r\n([ \t])", r"\1", match.group(1).decode("utf-8", "replace")).strip()
    return decode_words(value)[0]


def _in_reply_to(raw: bytes) -> str | None:
    match = _IN_REPLY_TO.search(_head(raw))
    if match is None:
        return None
    ids = msg_ids(match.group(1).decode("utf-8", "replace"))
    return ids[0] if ids else None


def request_hash(request: SendRequest) -> str:
    """SHA-256 of the request's canonical JSON; bytes (attachments, raw) enter as their own
    SHA-256, so a hash never holds message content."""
    return hashlib.sha256(
        json.dumps(_canonical(request), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"sha256": hashlib.sha256(value).hexdigest(), "size": len(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "type": type(value).__name__,
            **{f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)},
        }
    if isinstance(value, tuple | list):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
