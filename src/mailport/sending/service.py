"""Queueing sends, and reading and cancelling the outbound queue: the one service the API, the
CLI, the web pages and the library call (:attr:`mailport.services.Services.sending`).

``send`` turns a :class:`~mailport.sending.models.SendRequest` into bytes (composing a
structured request, resolving reply/forward/attachment refs through
:class:`~mailport.mailboxes.access.MailAccess`, or preparing a raw one), checks the From
address against the mailbox and its aliases, applies the Idempotency-Key rule, and inserts one
``outbound_messages`` row; the send worker (:mod:`mailport.sending.worker`) does the rest.
"""

from __future__ import annotations

from collections.abc import Callable

from mailport.clock import Clock, utc_now
from mailport.mailboxes.access import MailAccess
from mailport.mailboxes.service import MailboxService
from mailport.sending.models import OutboundMessage, OutboundPage, Queued, SendRequest, SendState
from mailport.store import Database

IDEMPOTENCY_HOURS = 24


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
        raise NotImplementedError

    async def list(
        self,
        tenant_id: str,
        mailbox_id: str,
        *,
        state: SendState | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> OutboundPage:
        """Newest first."""
        raise NotImplementedError

    async def get(self, tenant_id: str, mailbox_id: str, send_id: str) -> OutboundMessage:
        raise NotImplementedError

    async def cancel(self, tenant_id: str, mailbox_id: str, send_id: str) -> OutboundMessage:
        """Cancel a scheduled or queued send (:class:`~mailport.errors.SendNotCancellableError`
        otherwise)."""
        raise NotImplementedError
