"""A local Microsoft Graph v1.0 (mail endpoints only), as an HTTP service for the tests and the bench.

Emulated (shapes as Microsoft documents them; every request mailport sends and every answer given
here is checked by ``tests/integration/graph/test_spec.py`` against Microsoft's own generated
description of Graph, the url templates and models of the ``msgraph-sdk`` 1.65.0 wheel, read
with ``ast`` and never installed):

* ``/v1.0/me`` (or ``/users/{id|address}``): the user; ``mailFolders`` (well-known names in
  paths, ``childFolders``, create / rename / delete), ``messages`` of a folder or of the mailbox
  (``$select $top $skip $filter $search $orderby``), ``/$value``, ``PATCH`` (isRead, flag,
  categories; drafts: subject, body, recipients), ``move``, ``copy``, ``DELETE`` (into Deleted
  Items), ``permanentDelete``, POST of base64 MIME (``text/plain``: stored as a draft, as Graph
  does), ``sendMail`` (MIME or JSON; the Sent Items copy is filed here, recipients that are
  accounts of this fake receive it), ``createReply`` / ``createReplyAll`` / ``createForward``
  (threaded drafts), ``attachments``, ``send``;
* per-folder ``messages/delta``: rounds paged by ``Prefer: odata.maxpagesize``, ``@odata.nextLink``
  then ``@odata.deltaLink``; new and changed messages, ``@removed`` for deleted or moved-out ones;
  an expired token answers 410 ``syncStateNotFound``;
* ``$batch`` (JSON, at most 20 requests; items run through the same handlers) as Graph runs it:
  up to four parts at once against the mailbox (each counts toward MailboxConcurrency, the
  envelope itself does not), answers in no particular order (shuffled: Graph promises none), a
  part whose body is not JSON (``/$value``'s MIME) base64-encoded in a JSON string, per-part
  errors (404, 429 with Retry-After) in the part's own ``status``;
* ``subscriptions``: creation performs the validation handshake (POST ``?validationToken=…`` to
  the notification and lifecycle URLs, the token must come back as ``text/plain`` within 10 s, else
  400), expiration capped at 4230 minutes (400 beyond), renew (PATCH), ``reauthorize``, delete;
  change notifications (created / updated / deleted in the subscribed folder, with clientState)
  POSTed to ``notificationUrl``, lifecycle events (``missed``, ``reauthorizationRequired``,
  ``subscriptionRemoved``) to ``lifecycleNotificationUrl``; an expired subscription stops
  notifying and is removed (subscriptionRemoved).

Authentication: the local IdP's RS256 access tokens (its public key): an expired or bad token
answers 401 ``InvalidAuthenticationToken``; a token without ``Mail.ReadWrite`` (``Mail.Send`` for
sendMail) 403 ``ErrorAccessDenied``; an address with no account here 404
``MailboxNotEnabledForRESTAPI``. Ids are immutable when asked with ``Prefer: IdType="ImmutableId"``
(else a move gives a new id, as Graph's default ids do).

Faults (:class:`Faults`): the next N requests answer 401 / 429 (Retry-After) / 503 / any status
(``$batch`` parts are requests too: a fault with ``path_contains`` can hit one part);
per-item 429 inside ``$batch``; messages deleted just before their ``/$value`` is answered
(``gone_on_fetch``); 410 for delta tokens issued before :meth:`Account.expire_deltas`;
MailboxConcurrency (more than ``concurrency_limit`` requests in flight for one mailbox → 429
``ApplicationThrottled``, set ``latency`` to make requests overlap); notifications dropped,
duplicated or delayed; :meth:`GraphFake.expire_subscription`, :meth:`GraphFake.lifecycle`.

Every exchange is recorded in :attr:`GraphFake.requests` (``record=False`` for the bench). The
state is in memory and cheap: messages keep their raw bytes and a few parsed headers; delta
rounds snapshot the folder's ordering once.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import itertools
import json
import random
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.utils import format_datetime as rfc2822_datetime
from email.utils import getaddresses, make_msgid, parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx
import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes import AppServer

GRAPH_SCOPE_PREFIX = "https://graph.microsoft.com/"
MAX_EXPIRATION_MINUTES = 4230
VALIDATION_TIMEOUT = 10.0
NOTIFICATION_TIMEOUT = 3.0  # Graph drops a delivery the endpoint does not accept within ~3 s
BATCH_PARALLEL = 4  # parts Graph runs at once against the mailbox (Microsoft's Q&A answer)
BATCH_LIMIT = 20
WELL_KNOWN = {
    "inbox": "Inbox",
    "sentitems": "Sent Items",
    "drafts": "Drafts",
    "deleteditems": "Deleted Items",
    "junkemail": "Junk Email",
    "archive": "Archive",
    "outbox": "Outbox",
}
_CURRENT_PATH: contextvars.ContextVar[str] = contextvars.ContextVar("graph_fake_path", default="")
_HEADER_PARSER = BytesHeaderParser(policy=policy.compat32)  # the fast one: 10,000 messages for the bench
_PARSER = BytesParser(policy=policy.default)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _new_id(prefix: str = "AAMkAG") -> str:
    return prefix + secrets.token_urlsafe(33).replace("-", "_")


def error_body(code: str, message: str) -> dict[str, Any]:
    """Graph's error envelope."""
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {"date": _iso(_now()), "request-id": str(uuid.uuid4())},
        }
    }


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON, bytes or None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Exchange:
    """One request the fake answered (``batch_item``: a request inside a ``$batch``)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # decoded JSON, or None
    content_type: str
    raw_body: bytes
    status: int
    response: Any  # decoded JSON, or None
    batch_item: bool = False


@dataclass
class Delivery:
    """A notification POST the fake made (``kind``: change, lifecycle, validation)."""

    kind: str
    url: str
    body: Any
    status: int | None
    sent_at: float  # time.monotonic() when sent
    elapsed: float
    error: str | None = None


@dataclass
class Faults:
    """Fault injection. ``fail_next(status, n)`` queues answers; the notification faults apply to
    the next N deliveries of change notifications."""

    queued: list[tuple[int, str, str, float | None, str | None]] = field(default_factory=list)
    batch_throttle: int = 0  # next N $batch items answer 429
    gone_on_fetch: set[str] = field(default_factory=set)  # ids deleted as their /$value is asked
    drop: int = 0
    duplicate: int = 0
    delay: float = 0.0
    delay_count: int = 0

    def fail_next(
        self,
        status: int,
        n: int = 1,
        *,
        code: str | None = None,
        message: str = "",
        retry_after: float | None = 1,
        path_contains: str | None = None,
    ) -> None:
        code = code or {
            401: "InvalidAuthenticationToken",
            429: "TooManyRequests",
            503: "ServiceNotAvailable",
            403: "ErrorAccessDenied",
        }.get(status, "InternalServerError")
        message = message or {
            401: "Lifetime validation failed, the token is expired.",
            429: "Application is over its MailboxConcurrency limit.",
            503: "Service Unavailable",
        }.get(status, "fault")
        self.queued.extend([(status, code, message, retry_after, path_contains)] * n)

    def take(self, path: str) -> GraphError | None:
        for index, (status, code, message, retry_after, contains) in enumerate(self.queued):
            if contains is None or contains in path:
                del self.queued[index]
                headers = (
                    {"Retry-After": f"{retry_after:g}"}
                    if retry_after is not None and status in (429, 503)
                    else {}
                )
                return GraphError(status, code, message, headers)
        return None


@dataclass
class Folder:
    id: str
    name: str
    parent_id: str
    well_known: str | None = None
    hidden: bool = False


@dataclass
class Message:
    id: str
    folder_id: str
    raw: bytes | None
    seq: int
    order: int
    received: datetime
    sent: datetime | None
    is_read: bool = False
    is_draft: bool = False
    flag: str = "notFlagged"
    categories: list[str] = field(default_factory=list)
    subject: str = ""
    sender: tuple[str, str] | None = None
    to: list[tuple[str, str]] = field(default_factory=list)
    cc: list[tuple[str, str]] = field(default_factory=list)
    bcc: list[tuple[str, str]] = field(default_factory=list)
    reply_to: list[tuple[str, str]] = field(default_factory=list)
    message_id: str = ""
    in_reply_to: str = ""
    references: str = ""
    conversation_id: str = ""
    body: tuple[str, str] | None = None  # (contentType, content) of a JSON-made message
    attachments: list[dict[str, Any]] = field(default_factory=list)
    created: datetime = field(default_factory=_now)
    modified: datetime = field(default_factory=_now)
    change_key: str = field(default_factory=lambda: _new_id("CQAAAB"))
    internet_headers: bool = False  # Graph keeps the header fields of delivered mail only

    def touch(self, seq: int) -> None:
        self.seq = seq
        self.modified = _now()
        self.change_key = _new_id("CQAAAB")


@dataclass
class DeltaState:
    account: str
    folder_id: str
    since: int
    upto: int
    generation: int
    select: list[str] | None
    after: datetime | None
    page_size: int
    snapshot: list[tuple[str, str]] | None = None  # (kind, message id) in sequence order
    position: int = 0


@dataclass
class Subscription:
    id: str
    account: str
    resource: str
    folder_id: str | None  # None: the whole mailbox
    change_types: set[str]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expiration: datetime
    needs_reauth: bool = False

    def json(self, fake: GraphFake) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": fake.application_id,
            "changeType": ",".join(sorted(self.change_types)),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": _iso(self.expiration),
            "creatorId": fake.accounts[self.account].user_id,
            "latestSupportedTlsVersion": "v1_2",
            "includeResourceData": False,
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationQueryOptions": None,
            "notificationUrlAppId": None,
        }


def _decoded(value: object) -> str:
    if not value:
        return ""
    try:
        return str(make_header(decode_header(str(value))))
    except (LookupError, ValueError):
        return str(value)


def _addresses(value: str | None) -> list[tuple[str, str]]:
    return [(name, address) for name, address in getaddresses([value or ""]) if address]


def _internet_headers(message: Message) -> list[dict[str, str]] | None:
    """The header fields of delivered mail, unfolded, encoded words as written (as Graph gives them)."""
    if not message.internet_headers or not message.raw:
        return None
    parsed = _HEADER_PARSER.parsebytes(message.raw)
    return [{"name": k, "value": re.sub(r"\r?\n(?=[ \t])", "", str(v))} for k, v in parsed.items()]


def _recipient(pair: tuple[str, str]) -> dict[str, Any]:
    return {"emailAddress": {"name": pair[0] or pair[1], "address": pair[1]}}


def _from_recipients(items: Any) -> list[tuple[str, str]]:
    result = []
    for item in items or []:
        email = (item or {}).get("emailAddress") or {}
        if email.get("address"):
            result.append((str(email.get("name") or ""), str(email["address"])))
    return result


def _conversation(message_id: str, references: str, in_reply_to: str) -> str:
    root = (
        (references.split() or [in_reply_to] or [message_id])[0]
        if (references or in_reply_to)
        else message_id
    )
    return "AAQkAG" + base64.urlsafe_b64encode(hashlib.sha256(root.encode()).digest()[:24]).decode().rstrip(
        "="
    )


class Account:
    """One mailbox of the fake; tests add and change its messages directly."""

    def __init__(self, fake: GraphFake, email: str) -> None:
        self.fake = fake
        self.email = email
        self.user_id = str(uuid.uuid4())
        self.generation = 0
        self.root_id = _new_id("AAMkAGroot")
        self.folders: dict[str, Folder] = {}
        self.messages: dict[str, Message] = {}
        self.by_folder: dict[str, dict[str, None]] = {}
        self.removed: dict[str, dict[str, int]] = {}
        self.well_known: dict[str, str] = {}
        for name, display in WELL_KNOWN.items():
            folder = self._add_folder(display, self.root_id, well_known=name)
            self.well_known[name] = folder.id

    # -- folders ----------------------------------------------------------------------------

    def _add_folder(self, name: str, parent_id: str, *, well_known: str | None = None) -> Folder:
        folder = Folder(_new_id("AAMkAGfld"), name, parent_id, well_known)
        self.folders[folder.id] = folder
        self.by_folder[folder.id] = {}
        self.removed[folder.id] = {}
        return folder

    def folder_id(self, name: str) -> str:
        """A folder by id, wellKnownName or displayName path (``Inbox/Sub``; ``INBOX`` works)."""
        if name in self.folders:
            return name
        if name.lower() in self.well_known:
            return self.well_known[name.lower()]
        parent, found = self.root_id, None
        for part in name.split("/"):
            part = "Inbox" if part == "INBOX" and parent == self.root_id else part
            found = next((f for f in self.folders.values() if f.parent_id == parent and f.name == part), None)
            if found is None:
                raise KeyError(name)
            parent = found.id
        assert found is not None
        return found.id

    def create_folder(self, name: str, parent: str | None = None) -> str:
        with self.fake.lock:
            return self._add_folder(name, self.folder_id(parent) if parent else self.root_id).id

    # -- messages ----------------------------------------------------------------------------

    def add(
        self,
        raw: bytes,
        folder: str = "inbox",
        *,
        is_read: bool = False,
        flagged: bool = False,
        is_draft: bool = False,
        categories: Iterable[str] = (),
        received: datetime | None = None,
        sent_copy: bool = False,
    ) -> str:
        """Deliver ``raw`` (RFC 5322) into ``folder``; its id. Subscribers are notified.
        ``sent_copy``: the Sent Items copy of mail the owner wrote in Outlook, which Graph keeps
        without internet headers (its Bcc recipients only in ``bccRecipients``)."""
        with self.fake.lock:
            message = self._store(
                raw, self.folder_id(folder), is_read=is_read, is_draft=is_draft, received=received
            )
            message.internet_headers = not sent_copy
            message.flag = "flagged" if flagged else "notFlagged"
            message.categories = list(categories)
        self.fake._changed(self, message.folder_id, message.id, "created")
        return message.id

    def _store(
        self, raw: bytes, folder_id: str, *, is_read: bool, is_draft: bool, received: datetime | None = None
    ) -> Message:
        headers = _HEADER_PARSER.parsebytes(raw)
        try:
            sent: datetime | None = parsedate_to_datetime(str(headers["date"])) if headers["date"] else None
        except (TypeError, ValueError):
            sent = None
        message_id = str(headers["message-id"] or "").strip()
        references = str(headers["references"] or "")
        in_reply_to = str(headers["in-reply-to"] or "").strip()
        fake = self.fake
        message = Message(
            id=_new_id(),
            folder_id=folder_id,
            raw=raw,
            seq=next(fake.seq),
            order=next(fake.seq),
            received=(received or _now()).astimezone(UTC),
            sent=sent,
            is_read=is_read,
            is_draft=is_draft,
            subject=_decoded(headers["subject"]),
            sender=(_addresses(str(headers["from"] or "")) or [None])[0],
            to=_addresses(str(headers["to"] or "")),
            cc=_addresses(str(headers["cc"] or "")),
            bcc=_addresses(str(headers["bcc"] or "")),
            reply_to=_addresses(str(headers["reply-to"] or "")),
            message_id=message_id,
            in_reply_to=in_reply_to,
            references=references,
            conversation_id=_conversation(message_id, references, in_reply_to),
        )
        self._put(message)
        return message

    def _put(self, message: Message) -> None:
        self.messages[message.id] = message
        self.by_folder[message.folder_id][message.id] = None

    def update(
        self,
        message_id: str,
        *,
        is_read: bool | None = None,
        flagged: bool | None = None,
        categories: Iterable[str] | None = None,
    ) -> None:
        with self.fake.lock:
            message = self.messages[message_id]
            if is_read is not None:
                message.is_read = is_read
            if flagged is not None:
                message.flag = "flagged" if flagged else "notFlagged"
            if categories is not None:
                message.categories = list(categories)
            message.touch(next(self.fake.seq))
        self.fake._changed(self, message.folder_id, message_id, "updated")

    def move(self, message_id: str, folder: str, *, keep_id: bool = True) -> str:
        """Move a message (as Outlook would); its id afterwards."""
        with self.fake.lock:
            message = self.messages[message_id]
            source = message.folder_id
            dest = self.folder_id(folder)
            self._unlink(message)
            if not keep_id:
                message.id = _new_id()
            message.folder_id = dest
            message.touch(next(self.fake.seq))
            self._put(message)
        self.fake._changed(self, source, message_id, "deleted")
        self.fake._changed(self, dest, message.id, "created")
        return message.id

    def _unlink(self, message: Message) -> None:
        self.by_folder[message.folder_id].pop(message.id, None)
        self.messages.pop(message.id, None)
        self.removed[message.folder_id][message.id] = next(self.fake.seq)

    def delete(self, message_id: str) -> None:
        """Delete for good (no Deleted Items copy)."""
        with self.fake.lock:
            message = self.messages[message_id]
            self._unlink(message)
        self.fake._changed(self, message.folder_id, message_id, "deleted")

    def expire_deltas(self) -> None:
        """Every delta token issued so far answers 410 from now on."""
        with self.fake.lock:
            self.generation += 1

    def in_folder(self, folder: str) -> list[Message]:
        with self.fake.lock:
            return [self.messages[m] for m in self.by_folder[self.folder_id(folder)]]

    def mime(self, message: Message) -> bytes:
        """The message as RFC 5322 bytes (its raw bytes, or built from a JSON-made message)."""
        if message.raw is not None and message.body is None and not message.attachments:
            return message.raw
        built = EmailMessage()
        built["Subject"] = message.subject
        if message.sender:
            built["From"] = (
                f"{message.sender[0]} <{message.sender[1]}>" if message.sender[0] else message.sender[1]
            )
        for header, pairs in (("To", message.to), ("Cc", message.cc), ("Reply-To", message.reply_to)):
            if pairs:
                built[header] = ", ".join(address for _, address in pairs)
        built["Date"] = rfc2822_datetime(message.sent or message.created)
        built["Message-ID"] = message.message_id
        if message.in_reply_to:
            built["In-Reply-To"] = message.in_reply_to
        if message.references:
            built["References"] = message.references
        content_type, content = message.body or ("text", "")
        built.set_content(content, subtype="html" if content_type == "html" else "plain")
        for attachment in message.attachments:
            maintype, _, subtype = str(attachment["contentType"]).partition("/")
            built.add_attachment(
                base64.b64decode(attachment["contentBytes"]),
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=attachment["name"],
            )
        return bytes(built)


class GraphFake:
    """The fake Graph service (see the module docstring). ``public_pem``: the IdP's key."""

    def __init__(self, public_pem: bytes, *, concurrency_limit: int | None = 4) -> None:
        self.public_pem = public_pem
        self.lock = threading.RLock()
        self.seq = itertools.count(1)
        self.accounts: dict[str, Account] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.requests: list[Exchange] = []
        self.deliveries: list[Delivery] = []
        self.record = True
        self.faults = Faults()
        self.concurrency_limit = concurrency_limit
        self.latency = 0.0  # seconds every request takes (to make requests overlap)
        self.in_flight: dict[str, int] = {}
        self.peak_in_flight: dict[str, int] = {}
        self._batch_order = random.Random(17)
        self.tenant_id = str(uuid.uuid4())
        self.application_id = str(uuid.uuid4())
        self.clock_offset = timedelta(0)
        self._tokens: dict[str, DeltaState] = {}
        self._server = AppServer(Starlette(routes=[Route("/{path:path}", self._asgi, methods=_METHODS)]))
        self._loop = asyncio.new_event_loop()
        self._notifier = threading.Thread(
            target=self._loop.run_forever, name="graph-fake-notify", daemon=True
        )
        self._client: httpx.AsyncClient | None = None
        self._sweeping: Any = None
        self._stopping = False
        self._verified: dict[str, dict[str, Any]] = {}  # token -> claims (RS256 verified once)
        self.url = self._server.url

    # -- life ------------------------------------------------------------------------------

    def start(self) -> GraphFake:
        self._notifier.start()
        self._server.start()
        self._sweeping = asyncio.run_coroutine_threadsafe(self._sweeper(), self._loop)
        return self

    def stop(self) -> None:
        self._server.stop()
        self._stopping = True
        self._sweeping.result(5)
        if self._client is not None:
            asyncio.run_coroutine_threadsafe(self._client.aclose(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._notifier.join(5)

    def __enter__(self) -> GraphFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def now(self) -> datetime:
        return _now() + self.clock_offset

    def account(self, email: str) -> Account:
        """The account of ``email`` (made on first use)."""
        with self.lock:
            key = email.lower()
            if key not in self.accounts:
                self.accounts[key] = Account(self, email)
            return self.accounts[key]

    # -- HTTP ------------------------------------------------------------------------------

    async def _asgi(self, request: Request) -> Response:
        raw = await request.body()
        query = dict(parse_qsl(request.url.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in request.headers.items()}
        reply = await self.handle(request.method, request.url.path, query, headers, raw)
        if isinstance(reply.body, bytes):
            return Response(reply.body, reply.status, headers=reply.headers, media_type="text/plain")
        if reply.body is None:
            return Response(b"", reply.status, headers=reply.headers)
        return Response(
            json.dumps(reply.body).encode(),
            reply.status,
            headers=reply.headers,
            media_type="application/json",
        )

    async def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        raw: bytes,
        *,
        batch_item: bool = False,
        account: Account | None = None,
    ) -> Reply:
        """Answer one request (``account``: a ``$batch`` item, authenticated with its batch)."""
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        body: Any = None
        if raw and content_type == "application/json":
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        key = account.email.lower() if account else None
        path_token = _CURRENT_PATH.set(path)
        counted = False
        try:
            if account is None:
                account = self._authenticate(headers, path)
                key = account.email.lower() if account else None
            fault = self.faults.take(path)
            if fault is not None:
                raise fault
            envelope = path == "/v1.0/$batch"  # its parts count, each as they run
            if key is not None and self.concurrency_limit is not None and not envelope:
                counted = True
                with self.lock:
                    self.in_flight[key] = self.in_flight.get(key, 0) + 1
                    self.peak_in_flight[key] = max(self.peak_in_flight.get(key, 0), self.in_flight[key])
                    over = self.in_flight[key] > self.concurrency_limit
                if over:
                    raise GraphError(
                        429,
                        "ApplicationThrottled",
                        "Application is over its MailboxConcurrency limit.",
                        {"Retry-After": "1"},
                    )
            if self.latency and not envelope:
                await asyncio.sleep(self.latency)
            reply = await self._route(method, path, query, headers, raw, body, account)
        except GraphError as exc:
            reply = Reply(exc.status, error_body(exc.code, exc.message), dict(exc.headers))
        finally:
            _CURRENT_PATH.reset(path_token)
            if counted and key is not None:
                with self.lock:
                    self.in_flight[key] -= 1
        reply.headers.setdefault("request-id", str(uuid.uuid4()))
        if self.record:
            self.requests.append(
                Exchange(
                    method=method,
                    path=path,
                    query=query,
                    headers={k: v for k, v in headers.items() if k != "authorization"},
                    body=body,
                    content_type=content_type,
                    raw_body=raw if not isinstance(body, dict) else b"",
                    status=reply.status,
                    response=reply.body if not isinstance(reply.body, bytes) else None,
                    batch_item=batch_item,
                )
            )
        return reply

    def _authenticate(self, headers: dict[str, str], path: str) -> Account | None:
        authorization = headers.get("authorization", "")
        if not authorization.lower().startswith("bearer "):
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        token = authorization[7:].strip()
        claims = self._verified.get(token)
        if claims is not None and claims.get("exp", 0) <= time.time():
            claims = None  # expired since it was verified: verify again (that raises)
        try:
            if claims is None:
                claims = jwt.decode(
                    token, self.public_pem, algorithms=["RS256"], options={"verify_aud": False}
                )
                if len(self._verified) > 10_000:
                    self._verified.clear()
                self._verified[token] = claims
        except jwt.ExpiredSignatureError as exc:
            raise GraphError(
                401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."
            ) from exc
        except jwt.PyJWTError as exc:
            raise GraphError(401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed.") from exc
        scopes = {
            s.removeprefix(GRAPH_SCOPE_PREFIX)
            for s in str(claims.get("scope") or claims.get("scp") or "").split()
        }
        needed = "Mail.Send" if path.endswith("/sendMail") or path.endswith("/send") else "Mail.ReadWrite"
        if needed not in scopes and not path.startswith("/v1.0/$batch"):
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        email = str(claims.get("email") or claims.get("sub") or "").lower()
        with self.lock:
            account = self.accounts.get(email)
        if account is None:
            raise GraphError(
                404,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            )
        return account

    async def _route(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        raw: bytes,
        body: Any,
        account: Account | None,
    ) -> Reply:
        assert account is not None
        if not path.startswith("/v1.0/"):
            raise GraphError(400, "BadRequest", "Invalid version.")
        rest = path[len("/v1.0") :]
        if rest == "/$batch" and method == "POST":
            return await self._batch(body, headers, account)
        if rest.startswith("/subscriptions"):
            return await self._subscriptions(method, rest, body, account)
        match = re.match(r"^/(me|users/([^/]+))(/.*)?$", rest)
        if not match:
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{rest.split('/')[1]}'.")
        if match.group(2) and match.group(2).lower() not in (account.user_id, account.email.lower()):
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        immutable = "immutableid" in headers.get("prefer", "").replace(" ", "").replace('"', "").lower()
        with_page = _page_size(headers.get("prefer", ""))
        return self._mail(
            method, match.group(3) or "", query, headers, raw, body, account, immutable, with_page
        )

    # -- mail ------------------------------------------------------------------------------

    def _mail(
        self,
        method: str,
        rest: str,
        query: dict[str, str],
        headers: dict[str, str],
        raw: bytes,
        body: Any,
        account: Account,
        immutable: bool,
        page_size: int | None,
    ) -> Reply:
        _check_query(query)
        parts = [p for p in rest.split("/") if p]
        if not parts:
            if method == "GET":
                return Reply(
                    200,
                    _select(
                        {
                            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
                            "id": account.user_id,
                            "mail": account.email,
                            "userPrincipalName": account.email,
                            "displayName": account.email.split("@")[0],
                        },
                        query,
                    ),
                )
            raise _not_allowed()
        head = parts[0]
        if head == "sendMail" and method == "POST" and len(parts) == 1:
            return self._send_mail(headers, raw, body, account)
        if head == "mailFolders":
            return self._folders(method, parts[1:], query, headers, raw, body, account, immutable, page_size)
        if head == "messages":
            return self._messages(method, None, parts[1:], query, headers, raw, body, account, immutable)
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{head}'.")

    def _folder(self, account: Account, ref: str) -> Folder:
        with self.lock:
            folder_id = account.well_known.get(ref.lower(), ref)
            folder = account.folders.get(folder_id)
        if folder is None:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return folder

    def _folder_json(self, account: Account, folder: Folder) -> dict[str, Any]:
        ids = account.by_folder[folder.id]
        return {
            "id": folder.id,
            "displayName": folder.name,
            "parentFolderId": folder.parent_id,
            "childFolderCount": sum(1 for f in account.folders.values() if f.parent_id == folder.id),
            "unreadItemCount": sum(1 for m in ids if not account.messages[m].is_read),
            "totalItemCount": len(ids),
            "isHidden": folder.hidden,
        }

    def _folders(
        self,
        method: str,
        parts: list[str],
        query: dict[str, str],
        headers: dict[str, str],
        raw: bytes,
        body: Any,
        account: Account,
        immutable: bool,
        page_size: int | None,
    ) -> Reply:
        if not parts or (len(parts) == 2 and parts[1] == "childFolders"):
            parent = account.root_id if not parts else self._folder(account, parts[0]).id
            if method == "GET":
                with self.lock:
                    items = [
                        self._folder_json(account, f)
                        for f in account.folders.values()
                        if f.parent_id == parent
                    ]
                return self._page(items, query, default_top=10, max_top=250)
            if method == "POST":
                name = str((body or {}).get("displayName") or "")
                if not name:
                    raise GraphError(400, "ErrorInvalidRequest", "The displayName is missing.")
                with self.lock:
                    if any(f.parent_id == parent and f.name == name for f in account.folders.values()):
                        raise GraphError(
                            409, "ErrorFolderExists", "A folder with the specified name already exists."
                        )
                    folder = account._add_folder(name, parent)
                    return Reply(201, self._folder_json(account, folder))
            raise _not_allowed()
        folder = self._folder(account, parts[0])
        if len(parts) == 1:
            if method == "GET":
                with self.lock:
                    return Reply(200, _select(self._folder_json(account, folder), query))
            if method == "PATCH":
                with self.lock:
                    if folder.well_known:
                        raise GraphError(
                            400, "ErrorInvalidRequest", "A distinguished folder cannot be renamed."
                        )
                    folder.name = str((body or {}).get("displayName") or folder.name)
                    return Reply(200, self._folder_json(account, folder))
            if method == "DELETE":
                with self.lock:
                    if folder.well_known:
                        raise GraphError(
                            400, "ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted."
                        )
                    doomed = [folder.id]
                    for folder_id in doomed:
                        doomed.extend(f.id for f in account.folders.values() if f.parent_id == folder_id)
                    for folder_id in doomed:
                        for message_id in list(account.by_folder[folder_id]):
                            account._unlink(account.messages[message_id])
                        del account.folders[folder_id]
                return Reply(204)
            raise _not_allowed()
        if parts[1] == "move" and len(parts) == 2 and method == "POST":
            return self._move_folder(account, folder, body)
        if parts[1] == "messages":
            if len(parts) == 3 and parts[2] in ("delta", "delta()") and method == "GET":
                return self._delta(account, folder, query, page_size, headers)
            return self._messages(method, folder, parts[2:], query, headers, raw, body, account, immutable)
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{parts[1]}'.")

    def _move_folder(self, account: Account, folder: Folder, body: Any) -> Reply:
        """``POST mailFolders/{id}/move``: under another folder (an id or a well-known name,
        ``msgfolderroot`` for the top)."""
        destination = str((body or {}).get("destinationId") or "")
        parent_id = account.root_id if destination.lower() == "msgfolderroot" else None
        if parent_id is None:
            parent_id = self._folder(account, destination).id
        with self.lock:
            if folder.well_known:
                raise GraphError(400, "ErrorInvalidRequest", "A distinguished folder cannot be moved.")
            siblings = [f for f in account.folders.values() if f.parent_id == parent_id and f.id != folder.id]
            if any(f.name == folder.name for f in siblings):
                raise GraphError(409, "ErrorFolderExists", "A folder with the specified name already exists.")
            folder.parent_id = parent_id
            return Reply(200, self._folder_json(account, folder))

    def _page(
        self, items: list[dict[str, Any]], query: dict[str, str], *, default_top: int, max_top: int
    ) -> Reply:
        top = min(int(query.get("$top") or default_top), max_top)
        skip = int(query.get("$skip") or 0)
        page = [_select(item, query) for item in items[skip : skip + top]]
        result: dict[str, Any] = {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#collection",
            "value": page,
        }
        if skip + top < len(items):
            result["@odata.nextLink"] = self._link_with(query, {"$skip": str(skip + top), "$top": str(top)})
        return Reply(200, result)

    def _link_with(self, query: dict[str, str], changes: dict[str, str]) -> str:
        path = _CURRENT_PATH.get()
        return f"{self.url}{path}?{urlencode({**query, **changes}, quote_via=quote)}"

    def _messages(
        self,
        method: str,
        folder: Folder | None,
        parts: list[str],
        query: dict[str, str],
        headers: dict[str, str],
        raw: bytes,
        body: Any,
        account: Account,
        immutable: bool,
    ) -> Reply:
        if not parts:
            if method == "GET":
                return self._list(account, folder, query)
            if method == "POST":
                return self._create(account, folder, headers, raw, body)
            raise _not_allowed()
        message = self._message(account, parts[0], folder)
        if len(parts) == 1:
            if method == "GET":
                with self.lock:
                    return Reply(200, self._message_json(account, message, _selected(query)))
            if method == "PATCH":
                return self._patch(account, message, body)
            if method == "DELETE":
                with self.lock:
                    trash = account.well_known["deleteditems"]
                if message.folder_id == trash:
                    account.delete(message.id)
                else:
                    account.move(message.id, trash, keep_id=immutable)
                return Reply(204)
            raise _not_allowed()
        action = parts[1]
        if action == "$value" and method == "GET":
            if message.id in self.faults.gone_on_fetch:
                self.faults.gone_on_fetch.discard(message.id)
                account.delete(message.id)  # deleted between the listing and this fetch
                raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            with self.lock:
                return Reply(200, account.mime(message))
        if action in ("move", "copy") and method == "POST":
            destination = self._folder(account, str((body or {}).get("destinationId") or ""))
            if action == "move":
                new_id = account.move(message.id, destination.id, keep_id=immutable)
            else:
                new_id = self._copy(account, message, destination)
            with self.lock:
                return Reply(201, self._message_json(account, account.messages[new_id], None))
        if action == "permanentDelete" and method == "POST":
            account.delete(message.id)
            return Reply(204)
        if action in ("createReply", "createReplyAll", "createForward") and method == "POST":
            return self._create_draft(account, message, action, body or {})
        if action == "send" and method == "POST":
            if not message.is_draft:
                raise GraphError(400, "ErrorInvalidOperation", "Only drafts can be sent.")
            self._send(account, message)
            return Reply(202)
        if action == "attachments":
            if method == "POST":
                return self._attach(account, message, body or {})
            if method == "GET":
                return Reply(
                    200, {"value": [self._attachment_json(a, content=False) for a in message.attachments]}
                )
        raise _not_allowed()

    def _message(self, account: Account, message_id: str, folder: Folder | None) -> Message:
        with self.lock:
            message = account.messages.get(message_id)
        if message is None or (folder is not None and message.folder_id != folder.id):
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return message

    def _message_json(self, account: Account, message: Message, select: list[str] | None) -> dict[str, Any]:
        def want(name: str) -> bool:
            return select is None or name in select

        data: dict[str, Any] = {"@odata.etag": f'W/"{message.change_key}"', "id": message.id}
        simple = {
            "createdDateTime": lambda: _iso(message.created),
            "lastModifiedDateTime": lambda: _iso(message.modified),
            "changeKey": lambda: message.change_key,
            "categories": lambda: list(message.categories),
            "receivedDateTime": lambda: _iso(message.received),
            "sentDateTime": lambda: _iso(message.sent) if message.sent else None,
            "hasAttachments": lambda: bool(message.attachments) or _has_attachments(message.raw),
            "internetMessageId": lambda: message.message_id or None,
            "subject": lambda: message.subject,
            "bodyPreview": lambda: _text(account, message)[:255],
            "importance": lambda: "normal",
            "parentFolderId": lambda: message.folder_id,
            "conversationId": lambda: message.conversation_id,
            "isDeliveryReceiptRequested": lambda: False,
            "isReadReceiptRequested": lambda: False,
            "isRead": lambda: message.is_read,
            "isDraft": lambda: message.is_draft,
            "webLink": lambda: f"https://outlook.office365.com/owa/?ItemID={quote(message.id)}&exvsurl=1",
            "inferenceClassification": lambda: "focused",
            "body": lambda: {
                "contentType": (message.body or ("text", ""))[0],
                "content": _text(account, message),
            },
            "sender": lambda: _recipient(message.sender) if message.sender else None,
            "from": lambda: _recipient(message.sender) if message.sender else None,
            "toRecipients": lambda: [_recipient(p) for p in message.to],
            "ccRecipients": lambda: [_recipient(p) for p in message.cc],
            "bccRecipients": lambda: [_recipient(p) for p in message.bcc],
            "replyTo": lambda: [_recipient(p) for p in message.reply_to],
            "flag": lambda: {"flagStatus": message.flag},
            "internetMessageHeaders": lambda: _internet_headers(message),
        }
        for name, value in simple.items():
            if want(name):
                data[name] = value()
        return data

    def _list(self, account: Account, folder: Folder | None, query: dict[str, str]) -> Reply:
        search = query.get("$search")
        if search and query.get("$orderby"):
            raise GraphError(400, "ErrorInvalidUrlQuery", "The query parameter 'OrderBy' is invalid.")
        matches = _filter(query.get("$filter"))
        with self.lock:
            pool = (
                [account.messages[m] for m in account.by_folder[folder.id]]
                if folder
                else list(account.messages.values())
            )
            found = [m for m in pool if matches(m) and (not search or _search(account, m, search))]
            field_name, _, direction = (query.get("$orderby") or "receivedDateTime desc").partition(" ")
            key = {
                "receivedDateTime": lambda m: m.received,
                "sentDateTime": lambda m: m.sent or m.received,
            }.get(field_name, lambda m: m.received)
            found.sort(key=key, reverse=direction.strip().lower() != "asc")
            top = min(int(query.get("$top") or 10), 1000)
            skip = int(query.get("$skip") or 0)
            select = _selected(query)
            page = [self._message_json(account, m, select) for m in found[skip : skip + top]]
        result: dict[str, Any] = {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('me')/messages",
            "value": page,
        }
        if skip + top < len(found):
            result["@odata.nextLink"] = self._link_with(query, {"$skip": str(skip + top), "$top": str(top)})
        return Reply(200, result)

    def _create(
        self, account: Account, folder: Folder | None, headers: dict[str, str], raw: bytes, body: Any
    ) -> Reply:
        target = folder.id if folder else account.well_known["drafts"]
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "text/plain":
            mime = _decode_mime(raw)
            with self.lock:
                message = account._store(mime, target, is_read=True, is_draft=True)
        else:
            message = self._json_message(account, target, body or {})
        self._changed(account, target, message.id, "created")
        with self.lock:
            return Reply(201, self._message_json(account, message, None))

    def _apply_draft_fields(self, message: Message, body: dict[str, Any]) -> None:
        if "subject" in body:
            message.subject = str(body["subject"] or "")
        if isinstance(body.get("body"), dict):
            message.body = (
                str(body["body"].get("contentType") or "text").lower(),
                str(body["body"].get("content") or ""),
            )
        for key, attr in (
            ("toRecipients", "to"),
            ("ccRecipients", "cc"),
            ("bccRecipients", "bcc"),
            ("replyTo", "reply_to"),
        ):
            if key in body:
                setattr(message, attr, _from_recipients(body[key]))
        if body.get("internetMessageId"):  # Graph lets a draft's Message-ID be set
            message.message_id = str(body["internetMessageId"])

    def _patch(self, account: Account, message: Message, body: Any) -> Reply:
        body = body or {}
        draft_only = {
            "subject",
            "body",
            "toRecipients",
            "ccRecipients",
            "bccRecipients",
            "replyTo",
            "from",
            "sender",
            "internetMessageId",
        }
        allowed = {"isRead", "flag", "categories", "importance", "inferenceClassification"} | draft_only
        unknown = set(body) - allowed
        if unknown:
            raise GraphError(400, "ErrorInvalidProperty", f"Property {sorted(unknown)[0]} cannot be updated.")
        if set(body) & draft_only and not message.is_draft:
            raise GraphError(
                400,
                "ErrorInvalidPropertyUpdateSentMessage",
                "Update operation is invalid for property of a sent message.",
            )
        with self.lock:
            if "isRead" in body:
                message.is_read = bool(body["isRead"])
            if "flag" in body:
                message.flag = str((body["flag"] or {}).get("flagStatus") or "notFlagged")
            if "categories" in body:
                message.categories = [str(c) for c in body["categories"] or []]
            if message.is_draft:
                if message.raw is not None and set(body) & draft_only:
                    self._materialize(account, message)
                self._apply_draft_fields(message, body)
            message.touch(next(self.seq))
        self._changed(account, message.folder_id, message.id, "updated")
        with self.lock:
            return Reply(200, self._message_json(account, message, None))

    def _json_message(self, account: Account, folder_id: str, fields: dict[str, Any]) -> Message:
        """A draft made from Graph's JSON message resource (a new conversation, from the owner)."""
        with self.lock:
            message = account._store(b"", folder_id, is_read=True, is_draft=True)
            message.raw = None
            self._apply_draft_fields(message, fields)
            message.message_id = make_msgid(domain="fake.graph")
            message.conversation_id = _conversation(message.message_id, "", "")
            message.sender = (account.email.split("@")[0], account.email)
        return message

    def _materialize(self, account: Account, message: Message) -> None:
        """A MIME-made draft edited through JSON: keep its text as the JSON body."""
        message.body = ("text", _text(account, message))
        message.raw = None

    def _copy(self, account: Account, message: Message, destination: Folder) -> str:
        with self.lock:
            copy = Message(
                **{
                    **message.__dict__,
                    "attachments": list(message.attachments),
                    "categories": list(message.categories),
                }
            )
            copy.id = _new_id()
            copy.folder_id = destination.id
            copy.order = next(self.seq)
            copy.touch(next(self.seq))
            account._put(copy)
        self._changed(account, destination.id, copy.id, "created")
        return copy.id

    def _create_draft(self, account: Account, original: Message, action: str, body: dict[str, Any]) -> Reply:
        with self.lock:
            draft = Message(
                id=_new_id(),
                folder_id=account.well_known["drafts"],
                raw=None,
                seq=next(self.seq),
                order=next(self.seq),
                received=_now(),
                sent=None,
                is_read=True,
                is_draft=True,
                sender=(account.email.split("@")[0], account.email),
            )
            prefix = "FW: " if action == "createForward" else "RE: "
            subject = original.subject
            draft.subject = (
                subject if subject.upper().startswith(prefix.strip().upper()) else prefix + subject
            )
            comment = str(body.get("comment") or "")
            draft.body = ("text", comment)
            draft.message_id = make_msgid(domain="fake.graph")
            if action == "createForward":
                draft.to = _from_recipients(body.get("toRecipients"))
                draft.attachments = list(original.attachments)
                draft.conversation_id = _conversation(draft.message_id, "", "")
            else:
                draft.in_reply_to = original.message_id
                draft.references = " ".join(filter(None, [original.references, original.message_id]))
                draft.conversation_id = original.conversation_id
                reply_to = original.reply_to or ([original.sender] if original.sender else [])
                draft.to = list(reply_to)
                if action == "createReplyAll":
                    own = account.email.lower()
                    draft.cc = [
                        p for p in original.to + original.cc if p[1].lower() != own and p not in draft.to
                    ]
            if isinstance(body.get("message"), dict):
                self._apply_draft_fields(draft, body["message"])
            account._put(draft)
        self._changed(account, draft.folder_id, draft.id, "created")
        with self.lock:
            return Reply(201, self._message_json(account, draft, None))

    def _attach(self, account: Account, message: Message, body: dict[str, Any]) -> Reply:
        if body.get("@odata.type") != "#microsoft.graph.fileAttachment":
            raise GraphError(400, "ErrorInvalidRequest", "Only file attachments are supported here.")
        content = base64.b64decode(str(body.get("contentBytes") or ""))
        if len(content) > 3 * 1024 * 1024:
            raise GraphError(413, "ErrorRequestEntityTooLarge", "Use an upload session above 3 MB.")
        with self.lock:
            if message.raw is not None:
                self._materialize(account, message)
            attachment = {
                "@odata.type": "#microsoft.graph.fileAttachment",
                "id": _new_id("AAMkAGatt"),
                "lastModifiedDateTime": _iso(_now()),
                "name": str(body.get("name") or "attachment"),
                "contentType": str(body.get("contentType") or "application/octet-stream"),
                "size": len(content),
                "isInline": bool(body.get("isInline")),
                "contentId": body.get("contentId"),
                "contentLocation": None,
                "contentBytes": base64.b64encode(content).decode(),
            }
            message.attachments.append(attachment)
            message.touch(next(self.seq))
        self._changed(account, message.folder_id, message.id, "updated")
        return Reply(201, self._attachment_json(attachment, content=True))

    @staticmethod
    def _attachment_json(attachment: dict[str, Any], *, content: bool) -> dict[str, Any]:
        return {k: v for k, v in attachment.items() if content or k != "contentBytes"}

    def _send(self, account: Account, draft: Message) -> None:
        with self.lock:
            mime = account.mime(draft)
            sent_folder = account.well_known["sentitems"]
            source = draft.folder_id
            account._unlink(draft)
            draft.folder_id = sent_folder
            draft.is_draft = False
            draft.sent = _now()
            draft.raw, draft.body, draft.attachments = mime, None, []
            draft.touch(next(self.seq))
            account._put(draft)
            recipients = draft.to + draft.cc + draft.bcc
        self._changed(account, source, draft.id, "deleted")
        self._changed(account, sent_folder, draft.id, "created")
        self._deliver_locally(mime, recipients)

    def _deliver_locally(self, mime: bytes, recipients: list[tuple[str, str]]) -> None:
        for _, address in recipients:
            with self.lock:
                other = self.accounts.get(address.lower())
            if other is not None:
                other.add(mime)

    def _send_mail(self, headers: dict[str, str], raw: bytes, body: Any, account: Account) -> Reply:
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "text/plain":
            mime = _decode_mime(raw)
            with self.lock:
                message = account._store(mime, account.well_known["sentitems"], is_read=True, is_draft=False)
            recipients = (
                message.to + message.cc + _addresses(str(_HEADER_PARSER.parsebytes(mime)["bcc"] or ""))
            )
            if not recipients:
                with self.lock:
                    account._unlink(message)
                raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient is not valid.")
            self._changed(account, message.folder_id, message.id, "created")
            self._deliver_locally(mime, recipients)
            return Reply(202)
        if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
            raise GraphError(400, "ErrorInvalidRequest", "The message is missing.")
        self._send(account, self._json_message(account, account.well_known["drafts"], body["message"]))
        return Reply(202)

    # -- delta -----------------------------------------------------------------------------

    def _delta(
        self,
        account: Account,
        folder: Folder,
        query: dict[str, str],
        page_size: int | None,
        headers: dict[str, str],
    ) -> Reply:
        token = query.get("$deltatoken") or query.get("$skiptoken")
        with self.lock:
            if token:
                state = self._tokens.get(token)
                if state is None or state.generation != account.generation or state.folder_id != folder.id:
                    raise GraphError(410, "syncStateNotFound", "The sync state generation is not found.")
                if query.get("$deltatoken"):
                    state = DeltaState(
                        account.email.lower(),
                        folder.id,
                        state.upto,
                        next(self.seq),
                        account.generation,
                        state.select,
                        state.after,
                        page_size or state.page_size,
                    )
            else:
                after = None
                flt = query.get("$filter")
                if flt:
                    match = re.fullmatch(r"receivedDateTime\s+(ge|gt)\s+(\S+)", flt.strip())
                    if not match:
                        raise GraphError(
                            400, "ErrorInvalidUrlQueryFilter", "The filter clause is not supported for delta."
                        )
                    after = _parse_iso(match.group(2).strip("'"))
                select = query["$select"].split(",") if query.get("$select") else None
                state = DeltaState(
                    account.email.lower(),
                    folder.id,
                    0,
                    next(self.seq),
                    account.generation,
                    select,
                    after,
                    page_size or 10,
                )
            if state.snapshot is None:
                changed = [
                    (m.seq, "item", m.id)
                    for m in (account.messages[i] for i in account.by_folder[folder.id])
                    if state.since < m.seq <= state.upto
                    and (state.after is None or m.received >= state.after)
                ]
                if state.since:
                    changed += [
                        (seq, "removed", message_id)
                        for message_id, seq in account.removed[folder.id].items()
                        if state.since < seq <= state.upto and message_id not in account.by_folder[folder.id]
                    ]
                changed.sort()
                state.snapshot = [(kind, message_id) for _, kind, message_id in changed]
            values: list[dict[str, Any]] = []
            while state.position < len(state.snapshot) and len(values) < state.page_size:
                kind, message_id = state.snapshot[state.position]
                state.position += 1
                message = account.messages.get(message_id)
                if kind == "item":
                    if message is None or message.folder_id != folder.id or message.seq > state.upto:
                        continue  # changed again since the round began: the next round has it
                    item = self._message_json(account, message, state.select)
                    item["@odata.type"] = "#microsoft.graph.message"
                    values.append(item)
                elif message is None or message.folder_id != folder.id:
                    values.append(
                        {
                            "@odata.type": "#microsoft.graph.message",
                            "id": message_id,
                            "@removed": {"reason": "deleted"},
                        }
                    )
            link = f"{self.url}/v1.0/me/mailFolders/{quote(folder.id, safe='')}/messages/delta"
            result: dict[str, Any] = {
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(message)",
                "value": values,
            }
            new_token = secrets.token_urlsafe(24)
            if state.position < len(state.snapshot):
                self._tokens[new_token] = state
                result["@odata.nextLink"] = f"{link}?$skiptoken={new_token}"
            else:
                self._tokens[new_token] = DeltaState(
                    state.account,
                    folder.id,
                    state.upto,
                    state.upto,
                    account.generation,
                    state.select,
                    None,
                    state.page_size,
                )
                result["@odata.deltaLink"] = f"{link}?$deltatoken={new_token}"
            if token:
                self._tokens.pop(token, None)
        return Reply(200, result)

    # -- $batch ----------------------------------------------------------------------------

    async def _batch(self, body: Any, headers: dict[str, str], account: Account) -> Reply:
        requests = (body or {}).get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            raise GraphError(400, "BadRequest", "Invalid batch payload format.")
        if len(requests) > BATCH_LIMIT:
            raise GraphError(
                400, "BadRequest", f"Number of batch requests exceeds the limit of {BATCH_LIMIT}."
            )
        responses: list[dict[str, Any]] = []
        parts = asyncio.Semaphore(BATCH_PARALLEL)

        async def run(item: dict[str, Any]) -> None:
            async with parts:
                responses.append(await self._batch_part(item, headers, account))

        await asyncio.gather(*(run(item) for item in requests))
        self._batch_order.shuffle(responses)  # Graph promises no order: a client must match ids
        return Reply(200, {"responses": responses})

    async def _batch_part(
        self, item: dict[str, Any], headers: dict[str, str], account: Account
    ) -> dict[str, Any]:
        """One part of a ``$batch``, answered as Graph answers it inside the envelope."""
        item_id = str(item.get("id"))
        if self.faults.batch_throttle > 0:
            self.faults.batch_throttle -= 1
            return {
                "id": item_id,
                "status": 429,
                "headers": {"Retry-After": "1", "Content-Type": "application/json"},
                "body": error_body(
                    "ApplicationThrottled", "Application is over its MailboxConcurrency limit."
                ),
            }
        url = urlsplit(str(item.get("url") or ""))
        item_headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
        item_headers.setdefault("authorization", headers.get("authorization", ""))
        inner_body = item.get("body")
        raw = (
            json.dumps(inner_body).encode()
            if inner_body is not None and not isinstance(inner_body, str)
            else (inner_body or "").encode()
        )
        if inner_body is not None and not isinstance(inner_body, str):
            item_headers.setdefault("content-type", "application/json")
        path = "/v1.0" + (url.path if url.path.startswith("/") else "/" + url.path)
        try:
            self._authenticate(item_headers, path)
        except GraphError as exc:
            return {
                "id": item_id,
                "status": exc.status,
                "headers": {},
                "body": error_body(exc.code, exc.message),
            }
        reply = await self.handle(
            str(item.get("method") or "GET").upper(),
            path,
            dict(parse_qsl(url.query, keep_blank_values=True)),
            item_headers,
            raw,
            batch_item=True,
            account=account,
        )
        reply_body = reply.body
        reply_headers = {k: v for k, v in reply.headers.items() if k.lower() != "request-id"}
        if isinstance(reply_body, bytes):
            # a body that is not JSON comes back base64-encoded in a JSON string
            reply_body = base64.b64encode(reply_body).decode()
            reply_headers["Content-Type"] = "text/plain"
        elif isinstance(reply_body, dict):
            reply_headers["Content-Type"] = "application/json"
        return {
            "id": item_id,
            "status": reply.status,
            "headers": reply_headers,
            **({"body": reply_body} if reply_body is not None else {}),
        }

    # -- subscriptions ---------------------------------------------------------------------

    async def _subscriptions(self, method: str, rest: str, body: Any, account: Account) -> Reply:
        parts = [p for p in rest.split("/") if p][1:]
        if not parts:
            if method == "POST":
                return await self._subscribe(body or {}, account)
            if method == "GET":
                with self.lock:
                    mine = [
                        s.json(self)
                        for s in self.subscriptions.values()
                        if s.account == account.email.lower()
                    ]
                return Reply(200, {"value": mine})
            raise _not_allowed()
        with self.lock:
            subscription = self.subscriptions.get(parts[0])
        if subscription is None or subscription.account != account.email.lower():
            raise GraphError(404, "ResourceNotFound", f"The object was not found: subscription {parts[0]}.")
        if len(parts) == 2 and parts[1] == "reauthorize" and method == "POST":
            subscription.needs_reauth = False
            return Reply(204)
        if len(parts) != 1:
            raise _not_allowed()
        if method == "GET":
            return Reply(200, subscription.json(self))
        if method == "DELETE":
            with self.lock:
                self.subscriptions.pop(subscription.id, None)
            return Reply(204)
        if method == "PATCH":
            subscription.expiration = self._expiration((body or {}).get("expirationDateTime"))
            subscription.needs_reauth = False
            return Reply(200, subscription.json(self))
        raise _not_allowed()

    def _expiration(self, value: Any) -> datetime:
        try:
            expiration = _parse_iso(str(value))
        except ValueError as exc:
            raise GraphError(400, "InvalidRequest", "expirationDateTime is not a date.") from exc
        now = self.now()
        if expiration <= now:
            raise GraphError(400, "InvalidRequest", "Subscription expiration can only be in the future.")
        if expiration > now + timedelta(minutes=MAX_EXPIRATION_MINUTES, seconds=60):
            raise GraphError(
                400,
                "InvalidRequest",
                f"Subscription expiration can only be {MAX_EXPIRATION_MINUTES} minutes in the future.",
            )
        return expiration

    async def _subscribe(self, body: dict[str, Any], account: Account) -> Reply:
        for key in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
            if not body.get(key):
                raise GraphError(400, "InvalidRequest", f"{key} is required.")
        change_types = {c.strip() for c in str(body["changeType"]).split(",")}
        if not change_types <= {"created", "updated", "deleted"}:
            raise GraphError(400, "InvalidRequest", "changeType must be created, updated or deleted.")
        expiration = self._expiration(body["expirationDateTime"])
        resource = str(body["resource"])
        match = re.fullmatch(
            r"/?(?:me|users/[^/]+)/(?:mailFolders(?:\('([^']+)'\)|/([^/]+))/)?messages",
            resource,
            re.IGNORECASE,
        )
        if not match:
            raise GraphError(400, "ExtensionError", f"Resource '{resource}' is not supported.")
        folder_ref = match.group(1) or match.group(2)
        folder_id = self._folder(account, folder_ref).id if folder_ref else None
        urls = [str(body["notificationUrl"])]
        if body.get("lifecycleNotificationUrl") and body["lifecycleNotificationUrl"] not in urls:
            urls.append(str(body["lifecycleNotificationUrl"]))
        for url in urls:
            await self._validate(url)
        subscription = Subscription(
            id=str(uuid.uuid4()),
            account=account.email.lower(),
            resource=resource,
            folder_id=folder_id,
            change_types=change_types,
            notification_url=str(body["notificationUrl"]),
            lifecycle_url=body.get("lifecycleNotificationUrl"),
            client_state=body.get("clientState"),
            expiration=expiration,
        )
        with self.lock:
            self.subscriptions[subscription.id] = subscription
        return Reply(
            201,
            {
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
                **subscription.json(self),
            },
        )

    async def _validate(self, url: str) -> None:
        token = "Validation: Testing client application reachability for subscription Request-Id: " + str(
            uuid.uuid4()
        )
        started = time.monotonic()
        status, text, error = None, "", None
        try:
            async with httpx.AsyncClient(timeout=VALIDATION_TIMEOUT) as client:
                response = await client.post(
                    url,
                    params={"validationToken": token},
                    headers={"Content-Type": "text/plain; charset=utf-8"},
                )
            status, text = response.status_code, response.text
            ok = (
                status == 200
                and text == token
                and response.headers.get("content-type", "").startswith("text/plain")
            )
        except httpx.HTTPError as exc:
            ok, error = False, type(exc).__name__
        self.deliveries.append(
            Delivery("validation", url, None, status, started, time.monotonic() - started, error)
        )
        if not ok:
            raise GraphError(
                400,
                "InvalidRequest",
                "Subscription validation request failed. Notification endpoint must respond with 200 OK "
                "to validation request.",
            )

    # -- notifications ---------------------------------------------------------------------

    def _changed(self, account: Account, folder_id: str, message_id: str, change_type: str) -> None:
        now = self.now()
        with self.lock:
            targets = [
                s
                for s in self.subscriptions.values()
                if s.account == account.email.lower()
                and (s.folder_id is None or s.folder_id == folder_id)
                and change_type in s.change_types
                and s.expiration > now
                and not s.needs_reauth
            ]
        for subscription in targets:
            resource = f"Users/{account.user_id}/Messages/{message_id}"
            item = {
                "subscriptionId": subscription.id,
                "subscriptionExpirationDateTime": _iso(subscription.expiration),
                "changeType": change_type,
                "resource": resource,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Message",
                    "@odata.id": resource,
                    "@odata.etag": 'W/"' + _new_id("CQAAAB") + '"',
                    "id": message_id,
                },
                "clientState": subscription.client_state,
                "tenantId": self.tenant_id,
            }
            copies, delay = 1, 0.0
            with self.lock:
                if self.faults.drop > 0:
                    self.faults.drop -= 1
                    copies = 0
                elif self.faults.duplicate > 0:
                    self.faults.duplicate -= 1
                    copies = 2
                if self.faults.delay_count > 0:
                    self.faults.delay_count -= 1
                    delay = self.faults.delay
            for _ in range(copies):
                self._post_soon("change", subscription.notification_url, {"value": [item]}, delay)

    def lifecycle(self, subscription_id: str, event: str) -> None:
        """Send a lifecycle event (``missed``, ``reauthorizationRequired``, ``subscriptionRemoved``);
        ``reauthorizationRequired`` pauses notifications until reauthorize or renew, ``subscriptionRemoved``
        removes the subscription."""
        with self.lock:
            subscription = self.subscriptions[subscription_id]
            if event == "reauthorizationRequired":
                subscription.needs_reauth = True
            if event == "subscriptionRemoved":
                self.subscriptions.pop(subscription_id, None)
        if subscription.lifecycle_url:
            self._post_soon(
                "lifecycle",
                subscription.lifecycle_url,
                {
                    "value": [
                        {
                            "subscriptionId": subscription.id,
                            "subscriptionExpirationDateTime": _iso(subscription.expiration),
                            "tenantId": self.tenant_id,
                            "clientState": subscription.client_state,
                            "lifecycleEvent": event,
                        }
                    ]
                },
                0.0,
            )

    def expire_subscription(self, subscription_id: str) -> None:
        """Let the subscription lapse now: it stops notifying and is removed (subscriptionRemoved)."""
        with self.lock:
            self.subscriptions[subscription_id].expiration = self.now() - timedelta(seconds=1)
        self._sweep()

    def _sweep(self) -> None:
        now = self.now()
        with self.lock:
            lapsed = [s.id for s in self.subscriptions.values() if s.expiration <= now]
        for subscription_id in lapsed:
            self.lifecycle(subscription_id, "subscriptionRemoved")

    async def _sweeper(self) -> None:
        while not self._stopping:
            await asyncio.sleep(0.05)
            self._sweep()

    def _post_soon(self, kind: str, url: str, body: dict[str, Any], delay: float) -> None:
        asyncio.run_coroutine_threadsafe(self._post(kind, url, body, delay), self._loop)

    async def _post(self, kind: str, url: str, body: dict[str, Any], delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=NOTIFICATION_TIMEOUT)
        started = time.monotonic()
        try:
            response = await self._client.post(url, json=body)
            self.deliveries.append(
                Delivery(kind, url, body, response.status_code, started, time.monotonic() - started)
            )
        except httpx.HTTPError as exc:
            self.deliveries.append(
                Delivery(kind, url, body, None, started, time.monotonic() - started, type(exc).__name__)
            )

    def wait_deliveries(self, count: int, *, kind: str = "change", timeout: float = 10.0) -> list[Delivery]:
        """Block until ``count`` deliveries of ``kind`` were made (for tests)."""
        deadline = time.monotonic() + timeout
        while True:
            done = [d for d in self.deliveries if d.kind == kind]
            if len(done) >= count or time.monotonic() > deadline:
                return done
            time.sleep(0.01)


_METHODS = ["GET", "POST", "PATCH", "DELETE", "PUT"]
_KNOWN_QUERY = {
    "$select",
    "$top",
    "$skip",
    "$filter",
    "$search",
    "$orderby",
    "$count",
    "$expand",
    "$skiptoken",
    "$deltatoken",
    "changeType",
    "includeHiddenMessages",
}


def _check_query(query: dict[str, str]) -> None:
    for name in query:
        if name.startswith("$") and name not in _KNOWN_QUERY:
            raise GraphError(400, "BadRequest", f"Query option '{name}' is not allowed.")


def _decode_mime(raw: bytes) -> bytes:
    """The body of a MIME request (``text/plain``, base64), as Graph decodes it."""
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise GraphError(
            400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content."
        ) from exc


def _not_allowed() -> GraphError:
    return GraphError(405, "Request_BadRequest", "The HTTP method is not allowed on this resource.")


def _selected(query: dict[str, str]) -> list[str] | None:
    return [s.strip() for s in query["$select"].split(",")] if query.get("$select") else None


def _select(item: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
    fields = _selected(query)
    if fields is None:
        return item
    return {k: v for k, v in item.items() if k in fields or k == "id" or k.startswith("@odata.")}


def _page_size(prefer: str) -> int | None:
    match = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", prefer)
    return min(int(match.group(1)), 1000) if match else None


def _has_attachments(raw: bytes | None) -> bool:
    return bool(raw) and b"content-disposition: attachment" in raw[:200_000].lower()  # type: ignore[index]


def _text(account: Account, message: Message) -> str:
    if message.body is not None or message.raw is None:
        return (message.body or ("text", ""))[1]
    parsed = _PARSER.parsebytes(message.raw)
    part = parsed.get_body(("plain", "html"))
    try:
        return str(part.get_content()) if part is not None else ""
    except (LookupError, ValueError):
        return ""


def _search(account: Account, message: Message, query: str) -> bool:
    """KQL terms joined by AND (each ``field:value`` or free text): all must hold."""
    terms = [t.strip("() ") for t in re.split(r"\s+AND\s+", query.strip().strip('"')) if t.strip("() ")]
    return all(_search_term(account, message, term) for term in terms)


def _search_term(account: Account, message: Message, term: str) -> bool:
    term = term.strip().strip('"').lower()
    field_name, sep, value = term.partition(":")
    if sep and field_name in ("subject", "from", "to", "body"):
        haystack = {
            "subject": message.subject,
            "from": " ".join(message.sender or ()),
            "to": " ".join(a for p in message.to for a in p),
            "body": _text(account, message),
        }[field_name]
        return value.strip('"') in haystack.lower()
    return any(
        term in text.lower()
        for text in (message.subject, " ".join(message.sender or ()), _text(account, message))
    )


_CLAUSE = re.compile(r"^\s*([\w/]+)\s+(eq|ne|ge|gt|le|lt)\s+(.+?)\s*$")


def _filter(expression: str | None) -> Callable[[Message], bool]:
    if not expression:
        return lambda m: True
    tests = []
    for clause in re.split(r"\s+and\s+", expression.strip()):
        match = _CLAUSE.match(clause)
        if not match:
            raise GraphError(400, "ErrorInvalidUrlQueryFilter", f"Invalid filter clause: {clause!r}.")
        prop, op, literal = match.groups()
        getters: dict[str, Callable[[Message], Any]] = {
            "isRead": lambda m: m.is_read,
            "isDraft": lambda m: m.is_draft,
            "receivedDateTime": lambda m: m.received,
            "sentDateTime": lambda m: m.sent,
            "flag/flagStatus": lambda m: m.flag,
            "conversationId": lambda m: m.conversation_id,
            "internetMessageId": lambda m: m.message_id,
            "subject": lambda m: m.subject,
            "hasAttachments": lambda m: bool(m.attachments) or _has_attachments(m.raw),
            "from/emailAddress/address": lambda m: m.sender[1].lower() if m.sender else None,
        }
        if prop not in getters:
            raise GraphError(400, "ErrorInvalidUrlQueryFilter", f"Unsupported filter property {prop}.")
        value: Any
        if literal in ("true", "false"):
            value = literal == "true"
        elif literal.startswith("'") and literal.endswith("'"):
            value = literal[1:-1].replace("''", "'")
        else:
            try:
                value = _parse_iso(literal)
            except ValueError as exc:
                raise GraphError(400, "ErrorInvalidUrlQueryFilter", f"Invalid literal {literal}.") from exc
        tests.append((getters[prop], op, value))

    def matches(message: Message) -> bool:
        for getter, op, value in tests:
            actual = getter(message)
            if actual is None:
                return False
            ok = {
                "eq": lambda a, b: a == b,
                "ne": lambda a, b: a != b,
                "ge": lambda a, b: a >= b,
                "gt": lambda a, b: a > b,
                "le": lambda a, b: a <= b,
                "lt": lambda a, b: a < b,
            }[op](actual, value)
            if not ok:
                return False
        return True

    return matches
