"""Sending through Microsoft Graph: the outbound queue's :class:`~mailport.sending.transport.Transport`
for ``graph`` mailboxes, so that they send without SMTP AUTH (which Security Defaults switch off).

* **New messages and forwards** go as they were composed: ``POST /me/sendMail`` with the MIME
  (base64, ``text/plain``). The queue hands over bytes without Bcc and the envelope; the
  envelope recipients that no To/Cc header names are put back as a ``Bcc`` header, which Graph
  delivers to and strips.
* **Replies** (the MIME has ``In-Reply-To``) are made with ``createReply`` (``createReplyAll``
  when there are several recipients) on the original, found by its ``internetMessageId``, so
  that Outlook threads them (the same ``conversationId``). The draft Graph makes is then given
  the composed subject, body (HTML, else text), recipients, Message-ID and attachments, and
  sent with ``/send``. A reply whose original is not in the mailbox, or that Graph cannot
  rebuild part for part (an attachment over :data:`ATTACHMENT_LIMIT`, an attached message, a
  body the parser cut short), goes as MIME through ``sendMail`` instead: its In-Reply-To and
  References still thread it everywhere but in Outlook's conversation view.
* ``committing`` is awaited immediately before the request that sends (``sendMail`` or
  ``/send``): whatever failed before it is retried, never what may have gone out.
* **Errors** keep the worker's rules: Graph's throttling (429/503, after the client's own
  Retry-After waits) and its 5xx are temporary (:class:`~mailport.errors.SendRefusedError`
  with ``temporary``, retried with backoff), any other 4xx is permanent with Graph's own words
  in ``server_said``; network failures stay what they are (temporary; after
  ``committing`` the send is recorded as sent, unconfirmed). A reply draft left behind by a
  failure is deleted.
* Graph files the Sent copy itself (:attr:`GraphTransport.files_sent_copy`).

Graph takes at most 4 MB in one request, so a message whose MIME is over :data:`MIME_LIMIT`
is refused (413 ``message_too_large``) rather than half-sent; upload sessions are not used.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailport.connectors.api_http import ApiHttp, mailbox_limiter
from mailport.connectors.graph.client import IMMUTABLE_IDS, GraphClient
from mailport.connectors.graph.models import GraphMessage
from mailport.errors import (
    ApiRateLimitedError,
    ConfigurationError,
    InputError,
    MailportError,
    MessageNotFoundError,
    MessageTooLargeError,
    NotFoundError,
    ProviderError,
    SendRefusedError,
)
from mailport.messages import Message, attachment_content, parse_message
from mailport.messages.model import Address
from mailport.sending.transport import Accepted, Committing, Outgoing, register_transport

if TYPE_CHECKING:
    from mailport.connectors.registry import ConnectorContext
    from mailport.mailboxes.models import Mailbox

log = logging.getLogger(__name__)

MIME_LIMIT = 3 * 1024 * 1024  # raw bytes; base64 makes it ~4 MB, Graph's limit for one request
ATTACHMENT_LIMIT = 3 * 1024 * 1024  # Graph's limit for a fileAttachment added in one request


def with_bcc_recipients(raw: bytes, hidden: Sequence[str]) -> bytes:
    """``raw`` with a ``Bcc`` header naming ``hidden`` (Graph delivers to them and strips it)."""
    if not hidden:
        return raw
    end = raw.find(b"\r\n\r\n")
    newline, end = (b"\r\n", end + 2) if end >= 0 else (b"\n", raw.find(b"\n\n") + 1)
    if end <= 0:  # no body: the header block runs to the end
        end, newline = len(raw), b"\r\n"
    field = ("Bcc: " + ",\r\n ".join(hidden)).encode("utf-8").replace(b"\r\n", newline) + newline
    return raw[:end] + field + raw[end:]


def hidden_recipients(message: Message, recipients: Sequence[str]) -> list[str]:
    named = {a.email.lower() for a in (*message.to, *message.cc)}
    return [r for r in recipients if r.lower() not in named]


def send_error(exc: MailportError) -> MailportError:
    """Graph's refusal as the worker reads it (see the module docstring); others unchanged."""
    if isinstance(exc, ApiRateLimitedError):
        return SendRefusedError(
            f"Graph throttled the send: {exc.message}",
            temporary=True,
            server_said=exc.server_said,
            retry_after=exc.details.get("retry_after"),
        )
    if type(exc) is ProviderError:
        status = exc.details.get("provider_status")
        temporary = status is None or status >= 500 or status in (408, 409)
        return SendRefusedError(
            f"Graph refused the send: {exc.message}",
            temporary=temporary,
            server_said=exc.server_said,
            provider_status=status,
        )
    return exc


@dataclass(frozen=True, slots=True)
class _Part:
    name: str
    content_type: str
    content: bytes
    inline: bool
    content_id: str | None


class GraphTransport:
    """One Graph mailbox's way out (see the module docstring)."""

    files_sent_copy = True  # Graph saves every sent message in Sent Items itself

    def __init__(self, client: GraphClient, *, mailbox_email: str = "", mailbox_id: str = "") -> None:
        self.client = client
        self.mailbox_email = mailbox_email
        self.mailbox_id = mailbox_id

    @classmethod
    def build(cls, mailbox: Mailbox, context: ConnectorContext) -> GraphTransport:
        """The transport of ``mailbox`` from what the composition root gives every connector."""
        if context.api is None or context.guard is None:
            raise ConfigurationError(
                f"mailbox {mailbox.id}: no Microsoft Graph endpoint is configured for its provider",
                hint="Connect the mailbox with the Microsoft provider (its `apis.graph` entry names Graph).",
            )
        http = ApiHttp(
            context.api.base_url,
            guard=context.guard,
            token_source=context.token_source,
            force_refresh=context.force_refresh,
            limiter=mailbox_limiter(mailbox.id, context.api_concurrency),
            connector="graph",
        )
        return cls(GraphClient(http), mailbox_email=mailbox.email, mailbox_id=mailbox.id)

    async def aclose(self) -> None:
        await self.client.http.aclose()

    async def transmit(self, message: Outgoing, *, committing: Committing) -> Accepted:
        if not message.recipients:
            raise InputError("a message needs at least one recipient")
        if len(message.raw) > MIME_LIMIT:
            raise MessageTooLargeError(
                f"the message has {len(message.raw)} bytes; Microsoft Graph takes at most "
                f"{MIME_LIMIT} in one request",
                hint="Send large files as links, or connect the mailbox over IMAP/SMTP.",
            )
        try:
            parsed = parse_message(message.raw, mailbox_id=self.mailbox_id, folder="")
            original = await self._original(parsed)
            if original is not None and (parts := self._parts(parsed)) is not None:
                return await self._reply(original, parsed, parts, message, committing)
            await committing()
            await self.client.send_mime(
                with_bcc_recipients(message.raw, hidden_recipients(parsed, message.recipients))
            )
            return Accepted("202 Accepted by Microsoft Graph (sendMail)")
        except MailportError as exc:
            raise send_error(exc) from exc

    async def _original(self, parsed: Message) -> GraphMessage | None:
        """The message ``parsed`` answers, when this mailbox has it."""
        if not parsed.in_reply_to:
            return None
        wanted = parsed.in_reply_to.replace("'", "''")
        found = await self.client.list_messages(
            None, top=1, filter=f"internetMessageId eq '<{wanted}>'", select=("id", "conversationId")
        )
        return found.items[0] if found.items else None

    def _parts(self, parsed: Message) -> list[_Part] | None:
        """The attachments as Graph fileAttachments; None when the draft cannot carry the
        message part for part (then it goes as MIME)."""
        if parsed.parse_error or parsed.truncated:
            return None
        parts: list[_Part] = []
        for attachment in parsed.attachments:
            if attachment.content_type.lower() == "message/rfc822" or attachment.size > ATTACHMENT_LIMIT:
                return None
            _, content = attachment_content(parsed.raw, attachment.index)
            if len(content) > ATTACHMENT_LIMIT:
                return None
            parts.append(
                _Part(
                    name=attachment.filename or f"attachment-{attachment.index}",
                    content_type=attachment.content_type,
                    content=content,
                    inline=str(attachment.disposition) == "inline" and bool(attachment.content_id),
                    content_id=attachment.content_id,
                )
            )
        return parts

    async def _reply(
        self,
        original: GraphMessage,
        parsed: Message,
        parts: list[_Part],
        message: Outgoing,
        committing: Committing,
    ) -> Accepted:
        """createReply(All) on the original, the draft made to say what was composed, /send."""
        several = len(parsed.to) + len(parsed.cc) > 1
        draft = await (self.client.create_reply_all if several else self.client.create_reply)(original.id)
        sent = False
        try:
            await self._patch(draft.id, parsed, hidden_recipients(parsed, message.recipients))
            for part in parts:
                await self.client.add_attachment(
                    draft.id,
                    name=part.name,
                    content=part.content,
                    content_type=part.content_type,
                    is_inline=part.inline,
                    content_id=part.content_id,
                )
            await committing()
            await self.client.send_draft(draft.id)
            sent = True
        finally:
            if not sent:
                await self._discard(draft.id)
        log.info("graph: reply sent in conversation %s", original.conversation_id)
        return Accepted("202 Accepted by Microsoft Graph (createReply, send)")

    async def _patch(self, draft_id: str, parsed: Message, bcc: Sequence[str]) -> None:
        """One PATCH: subject, body, recipients, Reply-To, From (an alias) and the Message-ID
        (Graph lets a draft's internetMessageId be set)."""
        body: dict[str, Any] = {
            "subject": parsed.subject,
            "body": {"contentType": "html", "content": parsed.html}
            if parsed.html is not None
            else {"contentType": "text", "content": parsed.text or ""},
            "toRecipients": _recipients(parsed.to),
            "ccRecipients": _recipients(parsed.cc),
            "bccRecipients": [{"emailAddress": {"address": a}} for a in bcc],
        }
        if parsed.reply_to:
            body["replyTo"] = _recipients(parsed.reply_to)
        sender = parsed.from_[0] if parsed.from_ else None
        if sender is not None and sender.email.lower() != self.mailbox_email.lower():
            body["from"] = _recipients((sender,))[0]
        if parsed.message_id:
            body["internetMessageId"] = f"<{parsed.message_id}>"
        await self.client.http.request(
            "PATCH",
            f"/v1.0/me/messages/{draft_id}",
            json=body,
            headers={"Prefer": IMMUTABLE_IDS},
            not_found=MessageNotFoundError,
        )

    async def _discard(self, draft_id: str) -> None:
        """Delete a reply draft a failure left behind (best effort: the send failed already)."""
        try:
            await self.client.permanent_delete(draft_id)
        except (MailportError, OSError) as exc:
            if not isinstance(exc, NotFoundError):
                log.warning("graph: a reply draft could not be deleted after a failed send (%s)", exc)


def _recipients(addresses: Sequence[Address]) -> list[dict[str, Any]]:
    return [{"emailAddress": {"address": a.email, **({"name": a.name} if a.name else {})}} for a in addresses]


register_transport("graph", GraphTransport.build)

__all__ = ["GraphTransport", "hidden_recipients", "send_error"]
