"""A scriptable in-memory connector: the mailbox lives in a :class:`FakeMail` the test drives
(append mail, change the epoch, fail the next connect or fetch, refuse an action, push or
poll). Registered under ``fake`` by the ``fake_connector`` fixture only: a connector plugs in
by filling the hooks of :mod:`mailport.connectors.base`, without touching the core."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from mailport.connectors import registry
from mailport.connectors.base import (
    Batch,
    Change,
    ChangeKind,
    ConnectorHealth,
    Cursor,
    Feature,
    MessageRef,
    PollingConnector,
    RemoteMessage,
    ScopeState,
)
from mailport.connectors.folders import Folder, display_name, role_of
from mailport.connectors.mail import Envelope, MessagePage, MessageSummary, SearchQuery
from mailport.errors import UnsupportedFeatureError
from mailport.messages import Message, parse_message
from mailport.messages.model import Address
from mailport.messages.threading import thread_root

ALL = frozenset(
    {
        Feature.PUSH,
        Feature.FOLDERS,
        Feature.FLAGS,
        Feature.MOVE,
        Feature.DELETE,
        Feature.SEARCH,
        Feature.THREADS,
    }
)


@dataclass
class FakeMail:
    """One remote mailbox. Items are ``m<n>`` (not numbers: the core must not care)."""

    features: frozenset[Feature] = ALL - {Feature.PUSH}
    epoch: str = "1"
    mail: dict[str, list[tuple[bytes, datetime]]] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)  # moved or deleted items
    read: set[str] = field(default_factory=set)
    moved: dict[str, str] = field(default_factory=dict)
    fail: dict[str, list[Exception]] = field(default_factory=dict)  # "connect" / "fetch" / action
    listeners: list[FakeConnector] = field(default_factory=list)

    def append(self, raw: bytes, *, scope: str = "INBOX", at: datetime | None = None) -> str:
        messages = self.mail.setdefault(scope, [])
        messages.append((raw, at or datetime.now(UTC)))
        for connector in self.listeners:
            connector.news()
        return f"m{len(messages)}"

    def change_epoch(self) -> None:
        self.epoch = str(int(self.epoch) + 1)

    def fail_next(self, step: str, error: Exception) -> None:
        self.fail.setdefault(step, []).append(error)

    def check(self, step: str) -> None:
        if self.fail.get(step):
            raise self.fail[step].pop(0)


class FakeConnector(PollingConnector):
    key = "fake"
    capabilities = ALL

    def __init__(self, remote: FakeMail) -> None:
        self.remote = remote
        self.connected = False
        self._news = False

    def supports(self, feature: Feature) -> bool:
        return feature in self.remote.features

    @property
    def is_connected(self) -> bool:
        return self.connected

    async def connect(self) -> None:
        self.remote.check("connect")
        self.connected = True
        self.remote.listeners.append(self)

    async def disconnect(self) -> None:
        self.connected = False
        if self in self.remote.listeners:
            self.remote.listeners.remove(self)

    async def open(self, scope: str) -> ScopeState:
        return ScopeState(scope, self.remote.epoch)

    async def baseline(self, state: ScopeState, *, since: datetime) -> Cursor:
        dates = [at for _, at in self.remote.mail.get(state.scope, [])]
        before = next((n for n, at in enumerate(dates) if at >= since), len(dates))
        return Cursor(state.scope, state.epoch, str(before))

    async def restart(self, state: ScopeState) -> Cursor:
        return Cursor(state.scope, state.epoch, "0")

    async def fetch_since(self, cursor: Cursor, *, chunk: int = 200) -> AsyncIterator[Batch]:
        self.remote.check("fetch")
        messages = self.remote.mail.get(cursor.scope, [])
        for start in range(int(cursor.position), len(messages), chunk):
            page = range(start + 1, min(start + chunk, len(messages)) + 1)
            found = [
                RemoteMessage(
                    f"m{n}",
                    len(messages[n - 1][0]),
                    flags=("\\Seen",) if f"m{n}" in self.remote.read else (),
                    raw=messages[n - 1][0],
                    source={"fake": {"n": n}},
                )
                for n in page
                if f"m{n}" not in self.remote.gone
            ]
            yield Batch(found, Cursor(cursor.scope, cursor.epoch, str(page[-1])))

    def item_source(self, ref: MessageRef) -> dict[str, Any]:
        return {"fake": {"n": int(ref.item[1:])}}

    async def list_folders(self) -> list[Folder]:
        if Feature.FOLDERS not in self.remote.features:
            raise self._unsupported(Feature.FOLDERS)
        folders = []
        for scope in sorted({"INBOX", *self.remote.mail}, key=lambda s: (s != "INBOX", s)):
            items = [f"m{n}" for n in range(1, len(self.remote.mail.get(scope, [])) + 1)]
            present = [item for item in items if item not in self.remote.gone]
            unseen = [item for item in present if item not in self.remote.read]
            role = role_of(scope, delimiter="/")
            folders.append(
                Folder(scope, "/", display_name(scope, "/"), role, len(present), len(unseen), True)
            )
        return folders

    async def _act(self, feature: Feature, items: Sequence[str]) -> None:
        if not self.supports(feature):
            raise self._unsupported(feature)
        self.remote.check(feature.value)

    async def mark_read(self, items: Sequence[str]) -> None:
        await self._act(Feature.FLAGS, items)
        self.remote.read.update(items)

    async def move(self, items: Sequence[str], folder: str) -> None:
        await self._act(Feature.MOVE, items)
        self.remote.moved.update(dict.fromkeys(items, folder))
        self.remote.gone.update(items)

    async def delete(self, items: Sequence[str]) -> None:
        await self._act(Feature.DELETE, items)
        self.remote.gone.update(items)

    def news(self) -> None:
        if self.supports(Feature.PUSH):
            self._news = True
            self.wake()

    async def watch(self, *, interval: float) -> AsyncIterator[Change]:
        async for change in super().watch(interval=interval):
            news, self._news = self._news, False
            yield Change(ChangeKind.NEW_MAIL, change.at) if news else change

    async def health(self) -> ConnectorHealth:
        return ConnectorHealth(connected=self.connected, push=self.supports(Feature.PUSH))

    # --- search and threads: a subset of the criteria, over the parsed messages

    def _summaries(self, scope: str) -> list[tuple[Message, MessageSummary]]:
        """Every present message of ``scope``, oldest first, parsed, with its summary."""
        out = []
        for n, (raw, at) in enumerate(self.remote.mail.get(scope, []), start=1):
            item = f"m{n}"
            if item in self.remote.gone:
                continue
            flags = ("\\Seen",) if item in self.remote.read else ()
            message = parse_message(raw, mailbox_id="", folder=scope, flags=flags, size=len(raw))
            root = thread_root(
                message_id=message.message_id,
                in_reply_to=(message.in_reply_to,) if message.in_reply_to else (),
                references=message.references,
                content_sha256=message.sha256,
            )
            envelope = Envelope(
                subject=message.subject,
                from_=message.from_,
                to=message.to,
                cc=message.cc,
                reply_to=message.reply_to,
                date=message.date,
                message_id=message.message_id,
                in_reply_to=message.in_reply_to,
            )
            summary = MessageSummary(
                ref=MessageRef(scope, self.remote.epoch, item),
                folder=scope,
                envelope=envelope,
                flags=flags,
                size=len(raw),
                received_at=at,
                has_attachments=bool(message.attachments),
                preview=(message.text or "")[:100] or None,
                thread_key=message.thread_key,
                thread_root=root,
            )
            out.append((message, summary))
        return out

    async def search_messages(self, query: SearchQuery) -> MessagePage:
        """FROM/TO/CC/SUBJECT/TEXT/BODY as case-insensitive substrings, headers, Message-ID,
        dates, seen, attachments and sizes; flagged, answered and native are refused (422)."""
        if not self.supports(Feature.SEARCH):
            raise self._unsupported(Feature.SEARCH)
        for name in ("flagged", "answered", "native"):
            if getattr(query, name) is not None:
                raise UnsupportedFeatureError(f"the fake connector cannot search by {name}")

        def has(value: str | None, *texts: str | None) -> bool:
            return value is None or any(value.lower() in (t or "").lower() for t in texts)

        def addresses(found: tuple[Address, ...]) -> str:
            return " ".join(f"{a.name} <{a.email}>" for a in found)

        matches = []
        for message, summary in reversed(self._summaries(query.folder)):
            headers = {name.lower(): value for name, value in message.headers}
            if not (
                has(query.from_, addresses(message.from_))
                and has(query.to, addresses(message.to))
                and has(query.cc, addresses(message.cc))
                and has(query.subject, message.subject)
                and has(query.body, message.text, message.html)
                and has(query.text, message.text, message.html, *headers.values())
                and has(query.message_id, message.message_id)
                and all(has(v, headers.get(k.lower())) for k, v in query.headers.items())
                and (query.seen is None or ("\\Seen" in summary.flags) is query.seen)
                and (query.has_attachment is None or summary.has_attachments is query.has_attachment)
                and (query.larger is None or summary.size > query.larger)
                and (query.smaller is None or summary.size < query.smaller)
                and (query.since is None or (summary.received_at or query.since) >= query.since)
                and (query.before is None or (summary.received_at or query.before) < query.before)
            ):
                continue
            matches.append(summary)
        start = int(query.cursor.removeprefix("f_")) if query.cursor else 0
        page = matches[start : start + query.limit]
        more = start + query.limit < len(matches)
        return MessagePage(page, f"f_{start + query.limit}" if more else None)

    async def thread_messages(self, root: str) -> list[MessageSummary]:
        """Every message of every folder whose thread root is ``root``, oldest first."""
        if not self.supports(Feature.THREADS):
            raise self._unsupported(Feature.THREADS)
        found = [
            summary
            for scope in sorted(self.remote.mail)
            for _, summary in self._summaries(scope)
            if summary.thread_root == root
        ]
        return sorted(
            found, key=lambda s: s.envelope.date or s.received_at or datetime.min.replace(tzinfo=UTC)
        )


@dataclass
class FakeServer:
    """The remote mailboxes of every ``fake`` mailbox, by address."""

    remotes: dict[str, FakeMail] = field(default_factory=dict)

    def __getitem__(self, email: str) -> FakeMail:
        return self.remotes.setdefault(email, FakeMail())

    def register(self, key: str = "fake", features: frozenset[Feature] = ALL) -> None:
        """Make ``key`` a connector (declaring ``features``) over these remote mailboxes."""
        registry.register(key, lambda mailbox, _context: FakeConnector(self[mailbox.email]), features)


@pytest.fixture
def fake_connector() -> Iterator[FakeServer]:
    """The ``fake`` connector, registered for one test."""
    server = FakeServer()
    server.register()
    before = set(registry.keys())
    yield server
    for key in set(registry.keys()) - before | {"fake"}:
        registry.unregister(key)
