"""Sending through the Gmail API (``messages.send``) as the outbound queue's
:class:`~mailport.sending.transport.Transport` for ``gmail_api`` mailboxes: no SMTP settings, no
SMTP AUTH (which organisations switch off), the same OAuth grant as the mailbox's reading.

* **Recipients.** The queue hands a transport the bytes without Bcc and the envelope. Gmail has
  no envelope: it sends to the addresses in To, Cc and Bcc (and strips Bcc from what the
  recipients get, keeping it in the sender's Sent copy). So the envelope recipients that no
  header names are written back as a ``Bcc`` field before sending; an envelope that leaves out
  an address the headers name cannot be honoured (Gmail would send there anyway) and is refused
  before anything is sent.
* **Threads.** Gmail keeps a reply in its conversation only when the send names the thread: the
  original is looked up by the reply's In-Reply-To (else its last References id) with
  ``rfc822msgid:``, and its ``threadId`` goes with the send. Not found (the original was
  deleted, or never in this mailbox): a new thread, as any mail client would start.
* **Size.** Messages above 4 MiB go through the upload endpoint
  (``/upload/gmail/v1/users/me/messages/send``), below as JSON ``raw`` (the client decides).
* **Committing.** ``committing`` is awaited immediately before the send request: the one request
  after which Gmail may have sent the message. Throttling and outages before it are temporary
  failures (retried by the queue); after it, a refusal Gmail answered (4xx, throttling) is a
  :class:`~mailport.errors.SendRefusedError` (certainly not sent: retried when temporary, failed
  with Gmail's words otherwise), while a 5xx or a lost connection leaves the send "sent,
  unconfirmed" — never sent twice. :class:`~mailport.connectors.api_http.ApiHttp` never repeats
  the POST itself after a 5xx.
* **The Sent copy** is Gmail's own (``files_sent_copy``): every sent message is in ``SENT``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mailport.connectors.api_http import ApiHttp, mailbox_limiter
from mailport.connectors.gmail.client import GmailClient
from mailport.errors import (
    ApiNotEnabledError,
    ApiRateLimitedError,
    ConnectError,
    MailportError,
    MailTimeoutError,
    NotFoundError,
    OAuthPermissionMissingError,
    OAuthTokenRejectedError,
    ProviderError,
    SendRefusedError,
    UnsupportedFeatureError,
)
from mailport.messages import headers as hdr
from mailport.sending.transport import Accepted, Committing, Outgoing

if TYPE_CHECKING:
    from mailport.connectors.registry import ConnectorContext
    from mailport.mailboxes.models import Mailbox

_FIELD = re.compile(rb"([!-9;-~]+)[ \t]*:")
_DEFINITE = (
    ApiRateLimitedError,
    OAuthTokenRejectedError,
    OAuthPermissionMissingError,
    ApiNotEnabledError,
    NotFoundError,
)


def head_of(raw: bytes) -> bytes:
    """The header block, its last line's line break included (the blank line not)."""
    end = raw.find(b"\r\n\r\n")
    if end >= 0:
        return raw[: end + 2]
    end = raw.find(b"\n\n")
    return raw if end < 0 else raw[: end + 1]


def header_fields(head: bytes) -> dict[str, list[str]]:
    """Lower-cased field name -> values (continuation lines unfolded)."""
    fields: dict[str, list[str]] = {}
    name: str | None = None
    for line in head.splitlines():
        if line[:1] in (b" ", b"\t") and name is not None:
            fields[name][-1] += " " + line.strip().decode("utf-8", "replace")
            continue
        match = _FIELD.match(line)
        if match is None:
            name = None
            continue
        name = match.group(1).decode("ascii").lower()
        fields.setdefault(name, []).append(line[match.end() :].strip().decode("utf-8", "replace"))
    return fields


def with_envelope(raw: bytes, recipients: tuple[str, ...]) -> bytes:
    """``raw`` with a Bcc field for every envelope recipient no To/Cc/Bcc field names;
    :class:`UnsupportedFeatureError` when the headers name an address the envelope leaves out
    (Gmail sends to every address in the headers)."""
    head = head_of(raw)
    fields = header_fields(head)
    named: dict[str, str] = {}
    for name in ("to", "cc", "bcc"):
        for value in fields.get(name, []):
            for address in hdr.addresses(value)[0]:
                named[address.email.lower()] = address.email
    wanted = {recipient.lower(): recipient for recipient in recipients}
    extra = sorted(set(named) - set(wanted))
    if extra:
        raise UnsupportedFeatureError(
            f"the message's headers name {len(extra)} address(es) that are not among its recipients "
            f"({', '.join(named[e] for e in extra[:5])}); Gmail sends to every address in To, Cc and Bcc",
            hint="Leave `recipients` out (they are taken from the headers), or remove those "
            "addresses from the message.",
        )
    missing = [wanted[key] for key in wanted if key not in named]
    if not missing:
        return raw
    line_break = b"\r\n" if head.endswith(b"\r\n") or not head.endswith(b"\n") else b"\n"
    bcc = b"Bcc: " + (b"," + line_break + b" ").join(m.encode("utf-8") for m in missing) + line_break
    if not head.endswith(b"\n"):  # no body at all
        return raw + line_break + bcc
    return head + bcc + raw[len(head) :]


def reply_targets(raw: bytes) -> list[str]:
    """The Message-IDs a reply answers, most telling first: In-Reply-To, then the last
    References id (bare, without angle brackets)."""
    fields = header_fields(head_of(raw))
    found: list[str] = []
    for value in fields.get("in-reply-to", [])[:1]:
        found += hdr.msg_ids(value)[:1]
    for value in fields.get("references", [])[:1]:
        ids = hdr.msg_ids(value)
        if ids and ids[-1] not in found:
            found.append(ids[-1])
    return [value.strip("<>") for value in found if value and '"' not in value and " " not in value]


class GmailTransport:
    """``messages.send`` for one mailbox (see the module docstring)."""

    files_sent_copy = True  # Gmail files every sent message under SENT itself

    def __init__(self, client: GmailClient | None = None) -> None:
        self._client = client
        self._owned: ApiHttp | None = None
        self._mailbox: Mailbox | None = None
        self._context: ConnectorContext | None = None

    @classmethod
    def build(cls, mailbox: Mailbox, context: ConnectorContext) -> GmailTransport:
        """The transport registered for ``gmail_api`` (its HTTP client is made at the first
        send, inside the event loop, sharing the mailbox's request bound with its connectors)."""
        made = cls()
        made._mailbox = mailbox
        made._context = context
        return made

    def client(self) -> GmailClient:
        if self._client is None:
            mailbox, context = self._mailbox, self._context
            assert mailbox is not None and context is not None
            if context.api is None or context.guard is None:
                raise UnsupportedFeatureError(
                    f"mailbox {mailbox.id}: the Gmail API is not configured for its provider",
                    hint="The provider's `apis.gmail_api` entry (providers file) gives the API's base URL.",
                )
            self._owned = ApiHttp(
                context.api.base_url,
                guard=context.guard,
                token_source=context.token_source,
                force_refresh=context.force_refresh,
                limiter=mailbox_limiter(mailbox.id, context.api_concurrency),
                connector="gmail_api",
            )
            self._client = GmailClient(self._owned)
        return self._client

    async def thread_of(self, raw: bytes) -> str | None:
        """The Gmail thread a reply belongs to (None: a new conversation)."""
        client = self.client()
        for message_id in reply_targets(raw):
            found = await client.list_messages(q=f"rfc822msgid:{message_id}", max_results=1)
            if found.ids:
                return found.ids[0].thread_id or None
        return None

    async def transmit(self, message: Outgoing, *, committing: Committing) -> Accepted:
        raw = with_envelope(message.raw, message.recipients)
        try:
            thread_id = await self.thread_of(raw)
        except MailportError as exc:
            raise _before_send(exc) from exc
        await committing()
        try:
            sent = await self.client().send(raw, thread_id=thread_id)
        except _DEFINITE as exc:
            raise _refused(exc, temporary=isinstance(exc, ApiRateLimitedError)) from exc
        except ProviderError as exc:
            status = exc.details.get("provider_status")
            if isinstance(status, int) and 400 <= status < 500:
                raise _refused(exc, temporary=status in (408, 429)) from exc
            raise  # a 5xx: Gmail may have sent it (the worker records it sent, unconfirmed)
        where = f" in thread {sent.thread_id}" if sent.thread_id else ""
        return Accepted(reply=f"Gmail API: sent as message {sent.id}{where}")

    async def aclose(self) -> None:
        if self._owned is not None:
            await self._owned.aclose()
            self._owned = None
            self._client = None


def _refused(exc: MailportError, *, temporary: bool) -> SendRefusedError:
    """Gmail's refusal of the send request (certainly not sent), keeping its cause's code."""
    return SendRefusedError(
        f"Gmail refused the message: {exc.message}",
        temporary=temporary,
        code=exc.code if exc.code != ProviderError.code else None,
        hint=exc.hint,
        server_said=exc.server_said,
        provider_status=exc.details.get("provider_status"),
    )


def _before_send(exc: MailportError) -> MailportError:
    """A failure before the send request: nothing was sent. Throttling, outages and network
    failures are retried; authentication and configuration failures need a person."""
    if isinstance(exc, ApiRateLimitedError | ConnectError | MailTimeoutError) or (
        type(exc) is ProviderError and exc.details.get("provider_status") is None
    ):
        return _refused(exc, temporary=True)
    return exc
