"""A local Gmail API + Cloud Pub/Sub, faithful to the real services' shapes, for mailport's tests.

One HTTP server (:class:`~tests.fakes.AppServer`) answers, under one base URL:

* the Gmail API endpoints mailport uses (``/gmail/v1/users/{userId}/…``: profile, watch, stop,
  labels, messages incl. batchModify/batchDelete/trash/untrash/modify/insert/import/send, history,
  threads, drafts), the upload paths (``/upload/gmail/v1/…``, ``uploadType=media|multipart``) and
  batches (``POST /batch/gmail/v1``, ``multipart/mixed`` of ``application/http`` parts, answers
  ``Content-ID: <response-…>``);
* Cloud Pub/Sub v1: topics and subscriptions (``PUT``), ``:pull`` and ``:acknowledge``, and push
  delivery: a push subscription POSTs ``{"message": {"data", "messageId", "publishTime"},
  "subscription"}`` to its endpoint (mailport's ``/v1/push/gmail_api/<channel>?token=…``) and
  retries non-2xx answers with backoff, as Pub/Sub does;
* a token endpoint for service accounts (the JWT-bearer grant; the assertion's RS256 signature
  is checked against the key :meth:`PubSub.service_account` handed out).

Gmail access tokens are the local IdP's RS256 JWTs, verified with its public key: an expired or
unverifiable token gets Google's 401 body, a token without ``gmail.modify`` (or
``https://mail.google.com/``) Google's 403 insufficient-scope body. ``me`` is the token's email.

State is in memory and driven directly by tests: :meth:`GmailFake.account` → add, change and
delete messages and labels; every change appends a history record (messagesAdded,
messagesDeleted, labelsAdded, labelsRemoved) with a new, increasing historyId and, when the
account is watched, publishes ``{"emailAddress", "historyId"}`` to the watch's topic. History
older than the retention window answers 404 as Gmail does (:meth:`Account.expire_history`,
``history_retention``).

Faults: :meth:`GmailFake.fail` (the next N calls answer 401 / 429 with Retry-After / 403
rateLimitExceeded / 503, also inside batches), expired history (404), and on Pub/Sub
:meth:`PubSub.disturb` (duplicated, delayed and dropped deliveries). Every request and answer is
recorded in :attr:`GmailFake.requests` (batch items and upload metadata as their own entries) for
the spec check, ``tests/integration/gmail/test_spec.py``, which validates them against Google's
discovery documents (``gmail.v1.json``, ``pubsub.v1.json``).

Cheap on purpose (the bench ingests 10,000 messages through it): raw messages stay in memory as
bytes, headers are parsed once and only when a ``metadata`` read asks, tokens are verified once.
"""

from __future__ import annotations

import base64
import email.parser
import email.utils
import heapq
import itertools
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes import AppServer

GMAIL_SCOPES = ("https://www.googleapis.com/auth/gmail.modify", "https://mail.google.com/")
PUBSUB_SCOPE = "https://www.googleapis.com/auth/pubsub"
SYSTEM_LABELS = (
    "INBOX",
    "SENT",
    "DRAFT",
    "TRASH",
    "SPAM",
    "STARRED",
    "IMPORTANT",
    "UNREAD",
    "CHAT",
    "CATEGORY_PERSONAL",
    "CATEGORY_SOCIAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_UPDATES",
    "CATEGORY_FORUMS",
)
WATCH_DAYS = 7
PUSH_OK = frozenset({102, 200, 201, 202, 204})  # what Pub/Sub counts as an acknowledged push

Answer = tuple[int, Any, dict[str, str]]  # status, JSON body (None: empty), headers


def google_error(code: int, message: str, reason: str, status: str, **extra: Any) -> dict[str, Any]:
    """Google's JSON error body (``{"error": {"code", "message", "errors", "status"}}``)."""
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "errors": [{"message": message, "domain": extra.pop("domain", "global"), "reason": reason, **extra}],
        "status": status,
    }
    return {"error": error}


def _unauthenticated() -> Answer:
    body = google_error(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
        "other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "authError",
        "UNAUTHENTICATED",
        location="Authorization",
        locationType="header",
    )
    body["error"]["errors"][0]["message"] = "Invalid Credentials"
    return (
        401,
        body,
        {"www-authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'},
    )


def _insufficient_scope(scope: str) -> Answer:
    body = google_error(
        403, "Request had insufficient authentication scopes.", "insufficientPermissions", "PERMISSION_DENIED"
    )
    body["error"]["errors"][0]["message"] = "Insufficient Permission"
    body["error"]["details"] = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            "domain": "googleapis.com",
            "metadata": {"service": "gmail.googleapis.com"},
        }
    ]
    challenge = f'Bearer realm="https://accounts.google.com/", error="insufficient_scope", scope="{scope}"'
    return 403, body, {"www-authenticate": challenge}


def _not_found() -> Answer:
    return 404, google_error(404, "Requested entity was not found.", "notFound", "NOT_FOUND"), {}


def _invalid(message: str) -> Answer:
    return 400, google_error(400, message, "invalidArgument", "INVALID_ARGUMENT"), {}


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --------------------------------------------------------------------------- recording


@dataclass
class Exchange:
    """One request and its answer as the spec check sees them. ``service``: gmail | pubsub |
    token | push (a delivery the fake made); ``kind``: json | batch | batch_item | upload."""

    service: str
    method: str
    path: str
    query: list[tuple[str, str]]
    body: Any
    status: int
    response: Any
    kind: str = "json"
    headers: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- mailbox state


@dataclass
class StoredMessage:
    id: str
    thread_id: str
    raw: bytes
    labels: set[str]
    internal_date_ms: int
    history_id: int
    message_id_header: str = ""
    _headers: list[tuple[str, str]] | None = None

    def headers(self) -> list[tuple[str, str]]:
        if self._headers is None:
            head = self.raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
            parsed = email.parser.BytesHeaderParser().parsebytes(head + b"\r\n\r\n")
            self._headers = [(k, str(v)) for k, v in parsed.items()]
        return self._headers

    def header(self, name: str) -> str:
        for key, value in self.headers():
            if key.lower() == name.lower():
                return value
        return ""

    def snippet(self) -> str:
        parts = re.split(rb"\r?\n\r?\n", self.raw, maxsplit=1)
        body = parts[1] if len(parts) > 1 else b""
        return " ".join(body[:300].decode("utf-8", "replace").split())[:200]

    def resource(self, fmt: str = "minimal", metadata_headers: Iterable[str] = ()) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "threadId": self.thread_id,
            "labelIds": sorted(self.labels),
            "snippet": self.snippet() if fmt != "minimal" else "",
            "sizeEstimate": len(self.raw),
            "historyId": str(self.history_id),
            "internalDate": str(self.internal_date_ms),
        }
        if fmt == "minimal":
            del data["snippet"]
        if fmt == "raw":
            data["raw"] = base64.urlsafe_b64encode(self.raw).decode()
        elif fmt in ("metadata", "full"):
            wanted = {h.lower() for h in metadata_headers}
            headers = [
                {"name": k, "value": v}
                for k, v in self.headers()
                if fmt == "full" or not wanted or k.lower() in wanted
            ]
            data["payload"] = {
                "partId": "",
                "mimeType": (self.header("content-type").split(";")[0].strip() or "text/plain"),
                "filename": "",
                "headers": headers,
                "body": {"size": len(self.raw)},
            }
        return data

    def brief(self) -> dict[str, Any]:
        return {"id": self.id, "threadId": self.thread_id, "labelIds": sorted(self.labels)}


@dataclass
class Watch:
    topic: str
    label_ids: set[str]
    behavior: str
    expiration_ms: int


class Account:
    """One Gmail user. Test-facing methods change state exactly as the API would, with history."""

    def __init__(self, fake: GmailFake, email: str) -> None:
        self.fake = fake
        self.email = email
        self.messages: dict[str, StoredMessage] = {}
        self.labels: dict[str, dict[str, Any]] = {
            label: {"id": label, "name": label, "type": "system"} for label in SYSTEM_LABELS
        }
        self.history: list[dict[str, Any]] = []
        self.history_floor = 0  # startHistoryId below this: 404
        self.history_id = fake.next_history_id()
        self.watch: Watch | None = None
        self.drafts: dict[str, str] = {}  # draft id -> message id
        self._label_seq = itertools.count(1)

    # -- reading (tests) -------------------------------------------------
    def message(self, id: str) -> StoredMessage:
        return self.messages[id]

    def ids(self, label: str | None = None) -> list[str]:
        with self.fake.lock:
            return [m.id for m in self.messages.values() if label is None or label in m.labels]

    def label_id(self, name: str) -> str:
        with self.fake.lock:
            for label in self.labels.values():
                if label["name"] == name:
                    return str(label["id"])
        raise KeyError(name)

    # -- changing (tests and the API) ------------------------------------
    def add_message(
        self,
        raw: bytes,
        labels: Iterable[str] = ("INBOX", "UNREAD"),
        *,
        thread_id: str | None = None,
        internal_date: datetime | None = None,
        notify: bool = True,
    ) -> str:
        """A message arrives (or is inserted): messagesAdded; returns its id."""
        with self.fake.lock:
            for label in labels:
                if label not in self.labels:
                    raise KeyError(f"no label {label}")
            msg_id = f"{self.fake.next_message_number():016x}"
            when = internal_date or datetime.now(UTC)
            stored = StoredMessage(msg_id, "", raw, set(labels), int(when.timestamp() * 1000), 0)
            stored.message_id_header = stored.header("message-id").strip()
            stored.thread_id = thread_id or self._thread_for(stored) or msg_id
            self.messages[msg_id] = stored
            self._record(stored, "messagesAdded", notify=notify)
            return msg_id

    def modify(
        self, id: str, add: Iterable[str] = (), remove: Iterable[str] = (), *, notify: bool = True
    ) -> None:
        with self.fake.lock:
            stored = self.messages[id]
            added = [label for label in dict.fromkeys(add) if label not in stored.labels]
            removed = [label for label in dict.fromkeys(remove) if label in stored.labels]
            stored.labels.update(added)
            stored.labels.difference_update(removed)
            if added:
                self._record(stored, "labelsAdded", added, notify=notify and not removed)
            if removed:
                self._record(stored, "labelsRemoved", removed, notify=notify)

    def delete(self, id: str, *, notify: bool = True) -> None:
        with self.fake.lock:
            stored = self.messages.pop(id)
            for draft_id, message_id in list(self.drafts.items()):
                if message_id == id:
                    del self.drafts[draft_id]
            self._record(stored, "messagesDeleted", notify=notify)

    def create_label(self, name: str) -> str:
        with self.fake.lock:
            label_id = f"Label_{next(self._label_seq)}"
            self.labels[label_id] = {
                "id": label_id,
                "name": name,
                "type": "user",
                "messageListVisibility": "show",
                "labelListVisibility": "labelShow",
            }
            return label_id

    def delete_label(self, label_id: str) -> None:
        with self.fake.lock:
            for stored in self.messages.values():
                if label_id in stored.labels:
                    self.modify(stored.id, remove=[label_id])
            del self.labels[label_id]

    def expire_history(self) -> None:
        """Gmail dropped the history so far: any earlier startHistoryId now answers 404."""
        with self.fake.lock:
            self.history.clear()
            self.history_floor = self.history_id

    # -- internals --------------------------------------------------------
    def _thread_for(self, stored: StoredMessage) -> str | None:
        refs = (stored.header("in-reply-to") + " " + stored.header("references")).split()
        if not refs:
            return None
        for other in self.messages.values():
            if other.message_id_header and other.message_id_header in refs:
                return other.thread_id
        return None

    def _record(
        self, stored: StoredMessage, kind: str, label_ids: list[str] | None = None, *, notify: bool
    ) -> None:
        self.history_id = self.fake.next_history_id()
        stored.history_id = self.history_id
        entry: dict[str, Any] = {"message": stored.brief()}
        if label_ids is not None:
            entry["labelIds"] = label_ids
        self.history.append(
            {
                "id": str(self.history_id),
                "messages": [{"id": stored.id, "threadId": stored.thread_id}],
                kind: [entry],
            }
        )
        retention = self.fake.history_retention
        if retention is not None and len(self.history) > retention:
            dropped = self.history[: len(self.history) - retention]
            del self.history[: len(self.history) - retention]
            self.history_floor = int(dropped[-1]["id"])
        if notify:
            self._notify(stored, label_ids or [])

    def _notify(self, stored: StoredMessage, label_ids: list[str]) -> None:
        watch = self.watch
        if watch is None or watch.expiration_ms < time.time() * 1000:
            return
        if watch.label_ids:
            touched = (stored.labels | set(label_ids)) & watch.label_ids
            if (watch.behavior == "include") != bool(touched):
                return
        data = json.dumps({"emailAddress": self.email, "historyId": self.history_id}).encode()
        self.fake.pubsub.publish(watch.topic, data)


# --------------------------------------------------------------------------- Pub/Sub


@dataclass
class Subscription:
    name: str
    topic: str
    push_endpoint: str | None
    ack_deadline: float
    queue: list[tuple[str, bytes, str]] = field(default_factory=list)  # (message id, data, publish time)
    outstanding: dict[str, tuple[float, tuple[str, bytes, str]]] = field(
        default_factory=dict
    )  # ack id -> (due, msg)


@dataclass(order=True)
class _Push:
    due: float
    seq: int
    subscription: str = field(compare=False)
    message: tuple[str, bytes, str] = field(compare=False)
    attempt: int = field(compare=False, default=1)


class PubSub:
    """Topics, pull and push subscriptions; deliveries made by a thread of its own."""

    def __init__(self, fake: GmailFake) -> None:
        self.fake = fake
        self.topics: dict[str, set[str]] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.published: list[tuple[str, bytes]] = []
        self.deliveries: list[dict[str, Any]] = []  # push attempts: subscription, message id, status, at
        self.service_accounts: dict[str, rsa.RSAPublicKey] = {}
        self.tokens: dict[str, float] = {}  # access token -> expiry (wall time)
        self.push_retry_min = 0.05  # Pub/Sub: 10 s; tests want it short
        self.push_retry_max = 1.0
        self._faults: list[tuple[str, float]] = []  # (duplicate|delay|drop, delay seconds)
        self._heap: list[_Push] = []
        self._seq = itertools.count()
        self._wake = threading.Condition(fake.lock)
        self._stop = False
        self._thread = threading.Thread(target=self._deliver_loop, daemon=True, name="fake-pubsub-push")

    # -- test-facing -----------------------------------------------------
    def create_topic(self, name: str) -> str:
        with self.fake.lock:
            self.topics.setdefault(name, set())
        return name

    def create_subscription(
        self, name: str, topic: str, *, push_endpoint: str | None = None, ack_deadline: float = 10.0
    ) -> Subscription:
        with self.fake.lock:
            if topic not in self.topics:
                raise KeyError(f"no topic {topic}")
            sub = Subscription(name, topic, push_endpoint, ack_deadline)
            self.subscriptions[name] = sub
            self.topics[topic].add(name)
            return sub

    def disturb(self, kind: str, count: int = 1, *, delay: float = 0.0) -> None:
        """The next ``count`` publications are ``duplicate``d (delivered twice), ``delay``ed
        (``delay`` seconds late) or ``drop``ped (never delivered, never pulled)."""
        if kind not in ("duplicate", "delay", "drop"):
            raise ValueError(kind)
        with self.fake.lock:
            self._faults.extend([(kind, delay)] * count)

    def service_account(self, email: str = "puller@project.iam.gserviceaccount.com") -> dict[str, str]:
        """A service-account key file's JSON (token_uri: this fake) whose tokens may pull."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        self.service_accounts[key_id] = key.public_key()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return {
            "type": "service_account",
            "project_id": "project",
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": "1234567890",
            "token_uri": f"{self.fake.url}/token",
        }

    def backlog(self, subscription: str) -> int:
        with self.fake.lock:
            sub = self.subscriptions[subscription]
            return len(sub.queue) + len(sub.outstanding)

    # -- publishing and delivery ------------------------------------------
    def publish(self, topic: str, data: bytes) -> None:
        with self.fake.lock:
            self.published.append((topic, data))
            fault = self._faults.pop(0) if self._faults else None
            if fault and fault[0] == "drop":
                return
            copies = 2 if fault and fault[0] == "duplicate" else 1
            delay = fault[1] if fault and fault[0] == "delay" else 0.0
            message = (str(self.fake.next_message_number()), data, _rfc3339(time.time()))
            for name in self.topics.get(topic, ()):
                sub = self.subscriptions[name]
                for _ in range(copies):
                    if sub.push_endpoint:
                        heapq.heappush(
                            self._heap, _Push(time.monotonic() + delay, next(self._seq), name, message)
                        )
                    elif delay:
                        heapq.heappush(
                            self._heap, _Push(time.monotonic() + delay, next(self._seq), name, message)
                        )
                    else:
                        sub.queue.append(message)
            self._wake.notify()

    def _deliver_loop(self) -> None:
        client = httpx.Client(timeout=10)
        try:
            while True:
                with self.fake.lock:
                    while not self._stop and (not self._heap or self._heap[0].due > time.monotonic()):
                        timeout = self._heap[0].due - time.monotonic() if self._heap else None
                        self._wake.wait(timeout)
                    if self._stop:
                        return
                    item = heapq.heappop(self._heap)
                    sub = self.subscriptions.get(item.subscription)
                    if sub is None:
                        continue
                    if not sub.push_endpoint:  # a delayed pull message
                        sub.queue.append(item.message)
                        continue
                    endpoint = sub.push_endpoint
                self._push(client, sub, endpoint, item)
        finally:
            client.close()

    def _push(self, client: httpx.Client, sub: Subscription, endpoint: str, item: _Push) -> None:
        message_id, data, publish_time = item.message
        body = {
            "message": {
                "data": base64.b64encode(data).decode(),
                "messageId": message_id,
                "message_id": message_id,
                "publishTime": publish_time,
                "publish_time": publish_time,
            },
            "subscription": sub.name,
        }
        try:
            status = client.post(endpoint, json=body).status_code
        except httpx.HTTPError:
            status = 0
        self.fake.record(
            Exchange("push", "POST", urlsplit(endpoint).path, [], body, status, None, kind="push")
        )
        with self.fake.lock:
            self.deliveries.append(
                {
                    "subscription": sub.name,
                    "message_id": message_id,
                    "status": status,
                    "attempt": item.attempt,
                    "at": time.monotonic(),
                }
            )
            if status not in PUSH_OK:
                backoff = min(self.push_retry_max, self.push_retry_min * 2 ** (item.attempt - 1))
                heapq.heappush(
                    self._heap,
                    _Push(
                        time.monotonic() + backoff, next(self._seq), sub.name, item.message, item.attempt + 1
                    ),
                )
                self._wake.notify()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self.fake.lock:
            self._stop = True
            self._wake.notify_all()
        self._thread.join(5)

    # -- the HTTP API ---------------------------------------------------------
    def authorized(self, authorization: str | None) -> bool:
        if not authorization or not authorization.lower().startswith("bearer "):
            return False
        expiry = self.tokens.get(authorization[7:].strip())
        return expiry is not None and expiry > time.time()

    def grant(self, form: dict[str, str]) -> Answer:
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}, {}
        assertion = form.get("assertion", "")
        try:
            kid = jwt.get_unverified_header(assertion).get("kid", "")
            key = self.service_accounts[kid]
            claims = jwt.decode(assertion, key, algorithms=["RS256"], audience=f"{self.fake.url}/token")
        except (jwt.PyJWTError, KeyError):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, {}
        if PUBSUB_SCOPE not in str(claims.get("scope", "")).split():
            return 400, {"error": "invalid_scope", "error_description": "Invalid OAuth scope."}, {}
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        self.tokens[token] = time.time() + 3600
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}, {}

    def put_topic(self, name: str) -> Answer:
        self.create_topic(name)
        return 200, {"name": name}, {}

    def put_subscription(self, name: str, body: dict[str, Any]) -> Answer:
        topic = str(body.get("topic", ""))
        if topic not in self.topics:
            return 404, google_error(404, "Resource not found (resource=topic).", "notFound", "NOT_FOUND"), {}
        push = (body.get("pushConfig") or {}).get("pushEndpoint") or None
        sub = self.create_subscription(
            name, topic, push_endpoint=push, ack_deadline=float(body.get("ackDeadlineSeconds") or 10)
        )
        resource: dict[str, Any] = {"name": name, "topic": topic, "ackDeadlineSeconds": int(sub.ack_deadline)}
        resource["pushConfig"] = {"pushEndpoint": push} if push else {}
        return 200, resource, {}

    def pull(self, name: str, max_messages: int) -> tuple[list[dict[str, Any]], bool]:
        """Messages for a pull (redelivering those whose ack deadline passed); (items, known)."""
        with self.fake.lock:
            sub = self.subscriptions.get(name)
            if sub is None:
                return [], False
            now = time.monotonic()
            for ack_id, (due, message) in list(sub.outstanding.items()):
                if due <= now:
                    del sub.outstanding[ack_id]
                    sub.queue.append(message)
            items = []
            while sub.queue and len(items) < max_messages:
                message = sub.queue.pop(0)
                ack_id = secrets.token_urlsafe(16)
                sub.outstanding[ack_id] = (now + sub.ack_deadline, message)
                message_id, data, publish_time = message
                items.append(
                    {
                        "ackId": ack_id,
                        "message": {
                            "data": base64.b64encode(data).decode(),
                            "messageId": message_id,
                            "publishTime": publish_time,
                        },
                    }
                )
            return items, True

    def acknowledge(self, name: str, ack_ids: list[str]) -> bool:
        with self.fake.lock:
            sub = self.subscriptions.get(name)
            if sub is None:
                return False
            for ack_id in ack_ids:
                sub.outstanding.pop(ack_id, None)
            return True


# --------------------------------------------------------------------------- faults


@dataclass
class Fault:
    status: int
    count: int
    email: str | None
    retry_after: float | None
    reason: str | None
    path: str | None


# --------------------------------------------------------------------------- the fake


class GmailFake:
    """Gmail API + Pub/Sub on one loopback URL (see the module docstring)."""

    def __init__(self, *, public_pem: bytes, history_retention: int | None = None) -> None:
        self.public_key = serialization.load_pem_public_key(public_pem)
        self.history_retention = history_retention
        self.lock = threading.RLock()
        self.accounts: dict[str, Account] = {}
        self.requests: list[Exchange] = []
        self.sent: list[tuple[str, bytes]] = []  # (from account, raw) of every send
        self.record_requests = True
        self.pull_wait = 0.5  # seconds a pull waits for messages before answering with none
        self._faults: list[Fault] = []
        self._history_seq = itertools.count(1000)
        self._message_seq = itertools.count(0x18F000000000)
        self._claims: dict[str, dict[str, Any]] = {}
        self.pubsub = PubSub(self)
        self.server = AppServer(self._app())
        self.url = self.server.url

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> GmailFake:
        self.server.start()
        self.pubsub.start()
        return self

    def stop(self) -> None:
        self.pubsub.stop()
        self.server.stop()

    def __enter__(self) -> GmailFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test-facing --------------------------------------------------------------
    def account(self, email: str) -> Account:
        with self.lock:
            if email not in self.accounts:
                self.accounts[email] = Account(self, email)
            return self.accounts[email]

    def fail(
        self,
        status: int,
        count: int = 1,
        *,
        email: str | None = None,
        retry_after: float | None = None,
        reason: str | None = None,
        path: str | None = None,
    ) -> None:
        """The next ``count`` Gmail calls (of ``email``, on paths containing ``path``) answer
        ``status``: 401 (token rejected), 429 (with ``retry_after``), 403 (``reason``
        rateLimitExceeded by default), 503. Batch items count as calls."""
        with self.lock:
            self._faults.append(Fault(status, count, email, retry_after, reason, path))

    def record(self, exchange: Exchange) -> None:
        if self.record_requests:
            with self.lock:
                self.requests.append(exchange)

    def next_history_id(self) -> int:
        return next(self._history_seq)

    def next_message_number(self) -> int:
        return next(self._message_seq)

    # -- authentication --------------------------------------------------------------
    def _authenticate(self, authorization: str | None) -> tuple[Account | None, Answer | None]:
        if not authorization or not authorization.lower().startswith("bearer "):
            return None, _unauthenticated()
        token = authorization[7:].strip()
        claims = self._claims.get(token)
        if claims is None:
            try:
                claims = jwt.decode(
                    token,
                    self.public_key,
                    algorithms=["RS256"],  # type: ignore[arg-type]
                    options={"verify_aud": False, "verify_exp": False},
                )
            except jwt.PyJWTError:
                return None, _unauthenticated()
            self._claims[token] = claims
        if float(claims.get("exp", 0)) < time.time():
            return None, _unauthenticated()
        scopes = str(claims.get("scope", "")).split()
        if not any(scope in scopes for scope in GMAIL_SCOPES):
            return None, _insufficient_scope(" ".join(GMAIL_SCOPES))
        return self.account(str(claims.get("email") or claims.get("sub"))), None

    def _fault_for(self, account: Account, path: str) -> Answer | None:
        with self.lock:
            for fault in self._faults:
                if fault.count <= 0 or (fault.email and fault.email != account.email):
                    continue
                if fault.path and fault.path not in path:
                    continue
                fault.count -= 1
                self._faults = [f for f in self._faults if f.count > 0]
                return self._fault_answer(fault)
        return None

    @staticmethod
    def _fault_answer(fault: Fault) -> Answer:
        headers = {"retry-after": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        if fault.status == 401:
            return _unauthenticated()
        if fault.status == 429:
            until = _rfc3339(time.time() + (fault.retry_after or 0))
            body = google_error(
                429,
                f"User-rate limit exceeded.  Retry after {until}",
                fault.reason or "rateLimitExceeded",
                "RESOURCE_EXHAUSTED",
                domain="usageLimits",
            )
            return 429, body, headers
        if fault.status == 403:
            reason = fault.reason or "rateLimitExceeded"
            message = {
                "rateLimitExceeded": "Rate Limit Exceeded",
                "userRateLimitExceeded": "User Rate Limit Exceeded",
            }
            body = google_error(
                403, message.get(reason, reason), reason, "PERMISSION_DENIED", domain="usageLimits"
            )
            return 403, body, headers
        if fault.status == 503:
            return (
                503,
                google_error(503, "The service is currently unavailable.", "backendError", "UNAVAILABLE"),
                headers,
            )
        return fault.status, google_error(fault.status, "Backend Error", "backendError", "INTERNAL"), headers

    # -- the ASGI app ------------------------------------------------------------------
    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/token", self._token_endpoint, methods=["POST"]),
                Route("/batch/gmail/v1", self._batch_endpoint, methods=["POST"]),
                Route("/upload/gmail/v1/{rest:path}", self._upload_endpoint, methods=["POST", "PUT"]),
                Route(
                    "/gmail/v1/{rest:path}",
                    self._gmail_endpoint,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                ),
                Route("/v1/{rest:path}", self._pubsub_endpoint, methods=["GET", "POST", "PUT"]),
            ]
        )

    @staticmethod
    def _respond(answer: Answer) -> Response:
        status, body, headers = answer
        if body is None:
            return Response(status_code=status, headers=headers)
        return Response(
            json.dumps(body),
            status_code=status,
            headers=headers,
            media_type="application/json; charset=UTF-8",
        )

    async def _token_endpoint(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        answer = self.pubsub.grant(form)
        self.record(
            Exchange(
                "token", "POST", "/token", [], {"grant_type": form.get("grant_type")}, answer[0], answer[1]
            )
        )
        return self._respond(answer)

    async def _gmail_endpoint(self, request: Request) -> Response:
        body = await request.body()
        query = list(request.query_params.multi_items())
        payload = json.loads(body) if body else None
        answer = self._call(
            request.headers.get("authorization"), request.method, request.url.path, query, payload
        )
        self.record(Exchange("gmail", request.method, request.url.path, query, payload, answer[0], answer[1]))
        return self._respond(answer)

    async def _upload_endpoint(self, request: Request) -> Response:
        body = await request.body()
        query = list(request.query_params.multi_items())
        params = dict(query)
        content_type = request.headers.get("content-type", "")
        metadata: dict[str, Any] = {}
        if params.get("uploadType") == "multipart":
            boundary = content_type.split("boundary=", 1)[-1].strip('"')
            chunks = [c for c in body.split(b"--" + boundary.encode())[1:] if not c.startswith(b"--")]
            if len(chunks) != 2:
                answer = _invalid("Multipart upload needs a metadata part and a media part")
                return self._respond(answer)
            metadata = json.loads(chunks[0].split(b"\r\n\r\n", 1)[1].strip() or b"{}")
            raw = chunks[1].split(b"\r\n\r\n", 1)[1]
            raw = raw[:-2] if raw.endswith(b"\r\n") else raw
        elif params.get("uploadType") == "media":
            raw = body
        else:
            return self._respond(_invalid("Unknown upload protocol"))
        path = request.url.path[len("/upload") :]
        payload = metadata
        raw64 = base64.urlsafe_b64encode(raw).decode()
        if "/drafts" in path:
            call_body = {**payload, "message": {**(payload.get("message") or {}), "raw": raw64}}
        else:
            call_body = {**payload, "raw": raw64}
        media_query = [(k, v) for k, v in query if k != "uploadType"]
        answer = self._call(
            request.headers.get("authorization"), request.method, path, media_query, call_body
        )
        self.record(
            Exchange(
                "gmail",
                request.method,
                request.url.path,
                query,
                payload or None,
                answer[0],
                answer[1],
                kind="upload",
            )
        )
        return self._respond(answer)

    async def _batch_endpoint(self, request: Request) -> Response:
        body = await request.body()
        account, problem = self._authenticate(request.headers.get("authorization"))
        if problem is not None:
            self.record(
                Exchange("gmail", "POST", "/batch/gmail/v1", [], None, problem[0], problem[1], kind="batch")
            )
            return self._respond(problem)
        content_type = request.headers.get("content-type", "")
        if "boundary=" not in content_type:
            return self._respond(_invalid("Batch requests need a multipart/mixed body"))
        boundary = content_type.split("boundary=", 1)[1].split(";")[0].strip('"')
        parts = [
            c for c in body.split(b"--" + boundary.encode())[1:] if not c.lstrip(b"\r\n").startswith(b"--")
        ]
        parts = [c for c in parts if c.strip() and not c.startswith(b"--")]
        if len(parts) > 100:
            return self._respond(_invalid("Too many requests in batch (the limit is 100)."))
        out_boundary = "batch_" + secrets.token_urlsafe(12)
        chunks: list[bytes] = []
        authorization = request.headers.get("authorization")
        for part in parts:
            head, _, inner = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
            content_id = ""
            for line in head.decode("latin-1").split("\r\n"):
                if line.lower().startswith("content-id:"):
                    content_id = line.split(":", 1)[1].strip().strip("<>")
            request_line, _, rest = inner.partition(b"\r\n")
            inner_headers, _, inner_body = rest.partition(b"\r\n\r\n")
            method, target = request_line.decode().split()[:2]
            split = urlsplit(target)
            inner_query = parse_qsl(split.query, keep_blank_values=True)
            payload = json.loads(inner_body) if inner_body.strip() else None
            answer = self._call(authorization, method, split.path, inner_query, payload, account=account)
            self.record(
                Exchange(
                    "gmail", method, split.path, inner_query, payload, answer[0], answer[1], kind="batch_item"
                )
            )
            status, answer_body, answer_headers = answer
            text = json.dumps(answer_body) if answer_body is not None else ""
            header_lines = "".join(f"{k.title()}: {v}\r\n" for k, v in answer_headers.items())
            chunks.append(
                (
                    f"--{out_boundary}\r\nContent-Type: application/http\r\n"
                    f"Content-ID: <response-{content_id}>\r\n\r\n"
                    f"HTTP/1.1 {status} {_reason(status)}\r\n"
                    "Content-Type: application/json; charset=UTF-8\r\n"
                    f"{header_lines}Content-Length: {len(text.encode())}\r\n\r\n{text}\r\n"
                ).encode()
            )
        chunks.append(f"--{out_boundary}--\r\n".encode())
        self.record(Exchange("gmail", "POST", "/batch/gmail/v1", [], None, 200, None, kind="batch"))
        return Response(b"".join(chunks), media_type=f"multipart/mixed; boundary={out_boundary}")

    async def _pubsub_endpoint(self, request: Request) -> Response:
        import asyncio

        body = await request.body()
        payload = json.loads(body) if body else None
        path = unquote(request.url.path)
        query = list(request.query_params.multi_items())
        if not self.pubsub.authorized(request.headers.get("authorization")):
            answer = _unauthenticated()
        elif request.method == "PUT" and re.fullmatch(r"/v1/projects/[^/]+/topics/[^/:]+", path):
            answer = self.pubsub.put_topic(path[4:])
        elif request.method == "PUT" and re.fullmatch(r"/v1/projects/[^/]+/subscriptions/[^/:]+", path):
            answer = self.pubsub.put_subscription(path[4:], payload or {})
        elif request.method == "POST" and path.endswith(":pull"):
            name = path[4 : -len(":pull")]
            wanted = int((payload or {}).get("maxMessages") or 0)
            if wanted <= 0:
                answer = _invalid("maxMessages must be positive")
            else:
                deadline = time.monotonic() + self.pull_wait
                while True:
                    items, known = self.pubsub.pull(name, wanted)
                    if items or not known or time.monotonic() >= deadline:
                        break
                    await asyncio.sleep(0.01)
                if not known:
                    answer = (
                        404,
                        google_error(
                            404, "Resource not found (resource=subscription).", "notFound", "NOT_FOUND"
                        ),
                        {},
                    )
                else:
                    answer = 200, ({"receivedMessages": items} if items else {}), {}
        elif request.method == "POST" and path.endswith(":acknowledge"):
            name = path[4 : -len(":acknowledge")]
            if self.pubsub.acknowledge(name, list((payload or {}).get("ackIds") or ())):
                answer = 200, {}, {}
            else:
                answer = (
                    404,
                    google_error(404, "Resource not found (resource=subscription).", "notFound", "NOT_FOUND"),
                    {},
                )
        else:
            answer = _not_found()
        self.record(
            Exchange("pubsub", request.method, request.url.path, query, payload, answer[0], answer[1])
        )
        return self._respond(answer)

    # -- Gmail calls (plain and batched) ------------------------------------------------
    def _call(
        self,
        authorization: str | None,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        body: Any,
        *,
        account: Account | None = None,
    ) -> Answer:
        if account is None:
            account, problem = self._authenticate(authorization)
            if problem is not None:
                return problem
        assert account is not None
        match = re.fullmatch(r"/gmail/v1/users/([^/]+)(/.*)", path)
        if not match:
            return _not_found()
        user, rest = unquote(match.group(1)), match.group(2)
        if user not in ("me", account.email):
            return (
                403,
                google_error(403, f"Delegation denied for {account.email}", "forbidden", "PERMISSION_DENIED"),
                {},
            )
        fault = self._fault_for(account, path)
        if fault is not None:
            return fault
        for route_method, pattern, handler in _ROUTES:
            if route_method != method:
                continue
            found = pattern.fullmatch(rest)
            if found:
                with self.lock:
                    return handler(self, account, _Query(query), body, *found.groups())
        return _not_found()

    # -- Gmail handlers (under self.lock) ------------------------------------------------
    def _profile(self, acc: Account, q: _Query, body: Any) -> Answer:
        return (
            200,
            {
                "emailAddress": acc.email,
                "messagesTotal": len(acc.messages),
                "threadsTotal": len({m.thread_id for m in acc.messages.values()}),
                "historyId": str(acc.history_id),
            },
            {},
        )

    def _watch(self, acc: Account, q: _Query, body: Any) -> Answer:
        topic = str((body or {}).get("topicName") or "")
        if topic not in self.pubsub.topics:
            return (
                400,
                google_error(
                    400,
                    f"Invalid topicName does not match projects/{{project}}/topics/{{topic}} "
                    f"or the topic does not exist: {topic}",
                    "invalidArgument",
                    "INVALID_ARGUMENT",
                ),
                {},
            )
        expiration = int((time.time() + WATCH_DAYS * 86400) * 1000)
        behavior = str(
            (body or {}).get("labelFilterBehavior") or (body or {}).get("labelFilterAction") or "include"
        )
        acc.watch = Watch(topic, set((body or {}).get("labelIds") or ()), behavior.lower(), expiration)
        return 200, {"historyId": str(acc.history_id), "expiration": str(expiration)}, {}

    def _stop(self, acc: Account, q: _Query, body: Any) -> Answer:
        acc.watch = None
        return 204, None, {}

    def _labels(self, acc: Account, q: _Query, body: Any) -> Answer:
        return 200, {"labels": [dict(label) for label in acc.labels.values()]}, {}

    def _label_get(self, acc: Account, q: _Query, body: Any, label_id: str) -> Answer:
        label = acc.labels.get(unquote(label_id))
        if label is None:
            return _not_found()
        with_label = [m for m in acc.messages.values() if label["id"] in m.labels]
        unread = [m for m in with_label if "UNREAD" in m.labels]
        return (
            200,
            {
                **label,
                "messagesTotal": len(with_label),
                "messagesUnread": len(unread),
                "threadsTotal": len({m.thread_id for m in with_label}),
                "threadsUnread": len({m.thread_id for m in unread}),
            },
            {},
        )

    def _label_create(self, acc: Account, q: _Query, body: Any) -> Answer:
        name = str((body or {}).get("name") or "").strip()
        if not name:
            return _invalid("Invalid label name")
        if any(label["name"].lower() == name.lower() for label in acc.labels.values()):
            return 409, google_error(409, "Label name exists or conflicts", "aborted", "ABORTED"), {}
        label_id = acc.create_label(name)
        label = acc.labels[label_id]
        for key in ("labelListVisibility", "messageListVisibility"):
            if (body or {}).get(key):
                label[key] = body[key]
        return 200, dict(label), {}

    @staticmethod
    def _user_label(acc: Account, label_id: str, refusal: str) -> tuple[dict[str, Any] | None, Answer | None]:
        label = acc.labels.get(unquote(label_id))
        if label is None:
            return None, _not_found()
        if label["type"] == "system":
            return None, _invalid(refusal)
        return label, None

    def _label_patch(self, acc: Account, q: _Query, body: Any, label_id: str) -> Answer:
        label, problem = self._user_label(acc, label_id, "Invalid label")
        if label is None:
            return problem or _not_found()
        name = (body or {}).get("name")
        if name:
            if any(
                other["name"].lower() == name.lower() and other is not label for other in acc.labels.values()
            ):
                return 409, google_error(409, "Label name exists or conflicts", "aborted", "ABORTED"), {}
            label["name"] = name
        return 200, dict(label), {}

    def _label_delete(self, acc: Account, q: _Query, body: Any, label_id: str) -> Answer:
        label, problem = self._user_label(acc, label_id, "Invalid delete request")
        if label is None:
            return problem or _not_found()
        acc.delete_label(label["id"])
        return 204, None, {}

    def _messages_list(self, acc: Account, q: _Query, body: Any) -> Answer:
        label_ids = q.all("labelIds")
        spam_trash = q.one("includeSpamTrash") == "true" or bool({"SPAM", "TRASH"} & set(label_ids))
        search = _Search(q.one("q") or "", acc)
        matches = [
            m
            for m in acc.messages.values()
            if all(label in m.labels for label in label_ids)
            and (spam_trash or not ({"SPAM", "TRASH"} & m.labels))
            and search.matches(m)
        ]
        matches.sort(key=lambda m: (m.internal_date_ms, m.id), reverse=True)
        size = min(int(q.one("maxResults") or 100), 500)
        start = int(q.one("pageToken") or 0)
        page = matches[start : start + size]
        data: dict[str, Any] = {"resultSizeEstimate": len(matches)}
        if page:
            data["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
        if start + size < len(matches):
            data["nextPageToken"] = str(start + size)
        return 200, data, {}

    def _message_get(self, acc: Account, q: _Query, body: Any, msg_id: str) -> Answer:
        stored = acc.messages.get(msg_id)
        if stored is None:
            return _not_found()
        fmt = q.one("format") or "full"
        if fmt not in ("raw", "metadata", "minimal", "full"):
            return _invalid(f"Invalid value at 'format' ({fmt})")
        return 200, stored.resource(fmt, q.all("metadataHeaders")), {}

    def _label_check(self, acc: Account, labels: Iterable[str]) -> Answer | None:
        for label in labels:
            if label not in acc.labels:
                return _invalid(f"Invalid label: {label}")
        return None

    def _modify(self, acc: Account, q: _Query, body: Any, msg_id: str) -> Answer:
        stored = acc.messages.get(msg_id)
        if stored is None:
            return _not_found()
        add, remove = (
            list((body or {}).get("addLabelIds") or ()),
            list((body or {}).get("removeLabelIds") or ()),
        )
        problem = self._label_check(acc, add + remove)
        if problem:
            return problem
        acc.modify(msg_id, add, remove)
        return 200, stored.brief(), {}

    def _batch_modify(self, acc: Account, q: _Query, body: Any) -> Answer:
        ids = list((body or {}).get("ids") or ())
        if len(ids) > 1000:
            return _invalid("Too many ids (the limit is 1000)")
        add, remove = (
            list((body or {}).get("addLabelIds") or ()),
            list((body or {}).get("removeLabelIds") or ()),
        )
        problem = self._label_check(acc, add + remove)
        if problem:
            return problem
        for msg_id in ids:
            if msg_id in acc.messages:
                acc.modify(msg_id, add, remove)
        return 204, None, {}

    def _trash(self, acc: Account, q: _Query, body: Any, msg_id: str) -> Answer:
        if msg_id not in acc.messages:
            return _not_found()
        acc.modify(msg_id, ["TRASH"], ["INBOX"])
        return 200, acc.messages[msg_id].brief(), {}

    def _untrash(self, acc: Account, q: _Query, body: Any, msg_id: str) -> Answer:
        if msg_id not in acc.messages:
            return _not_found()
        acc.modify(msg_id, ["INBOX"], ["TRASH"])
        return 200, acc.messages[msg_id].brief(), {}

    def _delete(self, acc: Account, q: _Query, body: Any, msg_id: str) -> Answer:
        if msg_id not in acc.messages:
            return _not_found()
        acc.delete(msg_id)
        return 204, None, {}

    def _batch_delete(self, acc: Account, q: _Query, body: Any) -> Answer:
        for msg_id in list((body or {}).get("ids") or ()):
            if msg_id in acc.messages:
                acc.delete(msg_id)
        return 204, None, {}

    def _raw_of(self, body: Any) -> bytes | None:
        raw = (body or {}).get("raw")
        if not isinstance(raw, str):
            return None
        try:
            return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except ValueError:
            return None

    def _insert(self, acc: Account, q: _Query, body: Any, *, imported: bool = False) -> Answer:
        raw = self._raw_of(body)
        if raw is None:
            return _invalid(
                "'raw' RFC822 payload message string or uploading message via /upload/* URL required"
            )
        labels = list((body or {}).get("labelIds") or ())
        problem = self._label_check(acc, labels)
        if problem:
            return problem
        when = None
        if (q.one("internalDateSource") or ("dateHeader" if imported else "receivedTime")) == "dateHeader":
            with_date = StoredMessage("", "", raw, set(), 0, 0).header("date")
            try:
                when = email.utils.parsedate_to_datetime(with_date) if with_date else None
            except (TypeError, ValueError):
                when = None
        msg_id = acc.add_message(raw, labels, thread_id=(body or {}).get("threadId"), internal_date=when)
        return 200, acc.messages[msg_id].brief(), {}

    def _import(self, acc: Account, q: _Query, body: Any) -> Answer:
        return self._insert(acc, q, body, imported=True)

    def _send(self, acc: Account, q: _Query, body: Any) -> Answer:
        raw = self._raw_of(body)
        if raw is None:
            return _invalid(
                "'raw' RFC822 payload message string or uploading message via /upload/* URL required"
            )
        return self._deliver(acc, raw, (body or {}).get("threadId"))

    def _deliver(self, acc: Account, raw: bytes, thread_id: str | None) -> Answer:
        probe = StoredMessage("", "", raw, set(), 0, 0)
        recipients = email.utils.getaddresses(
            [probe.header(h) for h in ("to", "cc", "bcc") if probe.header(h)]
        )
        if not recipients:
            return _invalid("Invalid To header")
        if thread_id and not any(m.thread_id == thread_id for m in acc.messages.values()):
            thread_id = None  # Gmail ignores a threadId it does not know
        stripped = re.sub(rb"(?im)^bcc:.*\r?\n", b"", raw)
        msg_id = acc.add_message(stripped, ["SENT"], thread_id=thread_id)
        self.sent.append((acc.email, raw))
        for _, address in recipients:
            if address.lower() in self.accounts:
                self.accounts[address.lower()].add_message(stripped, ["INBOX", "UNREAD"])
        return 200, acc.messages[msg_id].brief(), {}

    def _history(self, acc: Account, q: _Query, body: Any) -> Answer:
        start_text = q.one("startHistoryId")
        if not start_text or not start_text.isdigit():
            return _invalid("Invalid startHistoryId")
        start = int(start_text)
        if start < acc.history_floor:
            return _not_found()
        label = q.one("labelId")
        types = set(q.all("historyTypes"))
        kinds = {
            "messageAdded": "messagesAdded",
            "messageDeleted": "messagesDeleted",
            "labelAdded": "labelsAdded",
            "labelRemoved": "labelsRemoved",
        }
        wanted = {kinds[t] for t in types if t in kinds} or set(kinds.values())
        records = []
        for record in acc.history:
            if int(record["id"]) <= start:
                continue
            kept = {k: v for k, v in record.items() if k in ("id", "messages") or k in wanted}
            if len(kept) == 2:
                continue
            if label:
                entries = [e for k, v in kept.items() if k not in ("id", "messages") for e in v]
                if not any(
                    label in e["message"]["labelIds"] or label in e.get("labelIds", ()) for e in entries
                ):
                    continue
            records.append(kept)
        size = min(int(q.one("maxResults") or 100), 500)
        offset = int(q.one("pageToken") or 0)
        page = records[offset : offset + size]
        data: dict[str, Any] = {"historyId": str(acc.history_id)}
        if page:
            data["history"] = page
        if offset + size < len(records):
            data["nextPageToken"] = str(offset + size)
        return 200, data, {}

    def _thread(self, acc: Account, q: _Query, body: Any, thread_id: str) -> Answer:
        members = sorted(
            (m for m in acc.messages.values() if m.thread_id == thread_id),
            key=lambda m: (m.internal_date_ms, m.id),
        )
        if not members:
            return _not_found()
        fmt = q.one("format") or "full"
        messages = [m.resource(fmt, q.all("metadataHeaders")) for m in members]
        return (
            200,
            {"id": thread_id, "historyId": str(max(m.history_id for m in members)), "messages": messages},
            {},
        )

    def _drafts_list(self, acc: Account, q: _Query, body: Any) -> Answer:
        drafts = [
            {"id": d, "message": {"id": m, "threadId": acc.messages[m].thread_id}}
            for d, m in acc.drafts.items()
        ]
        size = min(int(q.one("maxResults") or 100), 500)
        offset = int(q.one("pageToken") or 0)
        data: dict[str, Any] = {"resultSizeEstimate": len(drafts)}
        if drafts[offset : offset + size]:
            data["drafts"] = drafts[offset : offset + size]
        if offset + size < len(drafts):
            data["nextPageToken"] = str(offset + size)
        return 200, data, {}

    def _draft_get(self, acc: Account, q: _Query, body: Any, draft_id: str) -> Answer:
        msg_id = acc.drafts.get(draft_id)
        if msg_id is None:
            return _not_found()
        return 200, {"id": draft_id, "message": acc.messages[msg_id].resource(q.one("format") or "full")}, {}

    def _draft_create(self, acc: Account, q: _Query, body: Any) -> Answer:
        message = (body or {}).get("message") or {}
        raw = self._raw_of(message)
        if raw is None:
            return _invalid("Missing draft message")
        msg_id = acc.add_message(raw, ["DRAFT"], thread_id=message.get("threadId"))
        draft_id = "r" + secrets.token_hex(8)
        acc.drafts[draft_id] = msg_id
        return 200, {"id": draft_id, "message": acc.messages[msg_id].brief()}, {}

    def _draft_update(self, acc: Account, q: _Query, body: Any, draft_id: str) -> Answer:
        old = acc.drafts.get(draft_id)
        if old is None:
            return _not_found()
        message = (body or {}).get("message") or {}
        raw = self._raw_of(message)
        if raw is None:
            return _invalid("Missing draft message")
        thread_id = message.get("threadId") or acc.messages[old].thread_id
        acc.delete(old)
        msg_id = acc.add_message(raw, ["DRAFT"], thread_id=thread_id)
        acc.drafts[draft_id] = msg_id
        return 200, {"id": draft_id, "message": acc.messages[msg_id].brief()}, {}

    def _draft_delete(self, acc: Account, q: _Query, body: Any, draft_id: str) -> Answer:
        msg_id = acc.drafts.get(draft_id)
        if msg_id is None:
            return _not_found()
        acc.delete(msg_id)
        return 204, None, {}

    def _draft_send(self, acc: Account, q: _Query, body: Any) -> Answer:
        draft_id = str((body or {}).get("id") or "")
        msg_id = acc.drafts.get(draft_id)
        if msg_id is None:
            return _not_found()
        stored = acc.messages[msg_id]
        answer = self._deliver(acc, stored.raw, stored.thread_id)
        if answer[0] == 200:
            acc.delete(msg_id)
        return answer


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class _Query:
    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.items = items

    def one(self, name: str) -> str | None:
        for key, value in self.items:
            if key == name:
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.items if key == name]


class _Search:
    """The part of Gmail's search syntax the tests use: ``after:``/``before:`` (epoch seconds or
    Y/M/D), ``from:``, ``to:``, ``subject:``, ``in:``/``label:``, ``is:unread|read|starred``,
    ``rfc822msgid:`` and plain words (in the raw message, case-insensitive)."""

    _TOKEN = re.compile(r'(-?)(?:(\w+):)?("[^"]*"|\S+)')

    def __init__(self, text: str, account: Account) -> None:
        self.terms: list[tuple[bool, str | None, str]] = [
            (neg == "-", op.lower() if op else None, value.strip('"'))
            for neg, op, value in self._TOKEN.findall(text)
        ]
        self.account = account

    def matches(self, m: StoredMessage) -> bool:
        return all(self._term(m, op, value) != negated for negated, op, value in self.terms)

    def _term(self, m: StoredMessage, op: str | None, value: str) -> bool:
        lowered = value.lower()
        if op in ("after", "before"):
            seconds = _search_time(value)
            return (
                m.internal_date_ms / 1000 > seconds if op == "after" else m.internal_date_ms / 1000 < seconds
            )
        if op in ("from", "to", "subject", "cc"):
            return lowered in m.header(op).lower()
        if op in ("in", "label"):
            wanted = {lowered.upper()} | {
                label["id"] for label in self.account.labels.values() if label["name"].lower() == lowered
            }
            return bool(wanted & m.labels) or (lowered == "anywhere")
        if op == "is":
            return {
                "unread": "UNREAD" in m.labels,
                "read": "UNREAD" not in m.labels,
                "starred": "STARRED" in m.labels,
            }.get(lowered, False)
        if op == "rfc822msgid":
            return m.message_id_header.strip("<>").lower() == lowered.strip("<>")
        return lowered.encode() in m.raw.lower()


def _search_time(value: str) -> float:
    if value.isdigit():
        return float(value)
    year, month, day = (int(x) for x in value.replace("-", "/").split("/"))
    return datetime(year, month, day, tzinfo=UTC).timestamp()


Handler = Callable[..., Answer]
_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    (method, re.compile(pattern), handler)
    for method, pattern, handler in [
        ("GET", r"/profile", GmailFake._profile),
        ("POST", r"/watch", GmailFake._watch),
        ("POST", r"/stop", GmailFake._stop),
        ("GET", r"/labels", GmailFake._labels),
        ("POST", r"/labels", GmailFake._label_create),
        ("GET", r"/labels/([^/]+)", GmailFake._label_get),
        ("PATCH", r"/labels/([^/]+)", GmailFake._label_patch),
        ("DELETE", r"/labels/([^/]+)", GmailFake._label_delete),
        ("GET", r"/messages", GmailFake._messages_list),
        ("POST", r"/messages", GmailFake._insert),
        ("POST", r"/messages/import", GmailFake._import),
        ("POST", r"/messages/send", GmailFake._send),
        ("POST", r"/messages/batchModify", GmailFake._batch_modify),
        ("POST", r"/messages/batchDelete", GmailFake._batch_delete),
        ("GET", r"/messages/([^/]+)", GmailFake._message_get),
        ("DELETE", r"/messages/([^/]+)", GmailFake._delete),
        ("POST", r"/messages/([^/]+)/modify", GmailFake._modify),
        ("POST", r"/messages/([^/]+)/trash", GmailFake._trash),
        ("POST", r"/messages/([^/]+)/untrash", GmailFake._untrash),
        ("GET", r"/history", GmailFake._history),
        ("GET", r"/threads/([^/]+)", GmailFake._thread),
        ("GET", r"/drafts", GmailFake._drafts_list),
        ("POST", r"/drafts", GmailFake._draft_create),
        ("POST", r"/drafts/send", GmailFake._draft_send),
        ("GET", r"/drafts/([^/]+)", GmailFake._draft_get),
        ("PUT", r"/drafts/([^/]+)", GmailFake._draft_update),
        ("DELETE", r"/drafts/([^/]+)", GmailFake._draft_delete),
    ]
]


def make_message(
    *,
    sender: str = "alice@example.org",
    to: str = "bob@example.test",
    subject: str | None = None,
    body: str = "Hello.",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    extra: bytes = b"",
) -> bytes:
    """A small RFC 5322 message (CRLF) for tests."""
    subject = subject or f"Test {uuid.uuid4().hex[:8]}"
    message_id = message_id or f"<{uuid.uuid4().hex}@example.org>"
    lines = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Date: {email.utils.format_datetime(datetime.now(UTC))}",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    if in_reply_to:
        lines += [f"In-Reply-To: {in_reply_to}", f"References: {in_reply_to}"]
    return ("\r\n".join(lines) + "\r\n").encode() + extra + b"\r\n" + body.encode() + b"\r\n"


def push_endpoint(base_url: str, channel: str, token: str) -> str:
    """mailport's Gmail push URL for a channel, as a push subscription is configured with it."""
    return f"{base_url.rstrip('/')}/v1/push/gmail_api/{quote(channel)}?token={quote(token)}"


__all__ = ["Account", "Exchange", "GmailFake", "PubSub", "google_error", "make_message", "push_endpoint"]
