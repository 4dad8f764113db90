"""A scriptable in-memory connector: the mailbox lives in a :class:`FakeMail` the test drives
(append mail, change the epoch, fail the next connect or fetch, refuse an action, push or
poll). Registered under ``fake`` by the ``fake_connector`` fixture only: a connector plugs in
by filling the hooks of :mod:`mailport.connectors.base`, without touching the core.

It fills the mailbox-access hooks too (listing, one message, flags, move, delete, import,
folders), so the contract tests of tests/connectors run over it as over IMAP. Items are
``m<n>`` (the n-th message appended to a folder, never reused); every folder shares the
mailbox's one epoch; flags are neutral names and keywords. The after-processing actions
(``mark_read``, ``move``, ``delete``) act on the folder last opened and also record what they
did in ``read``/``moved``/``gone`` (by item, for the watcher's tests).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from mailport.connectors import header_fields, registry
from mailport.connectors.base import (
    Batch,
    Change,
    ChangeKind,
    ChangeSet,
    ConnectorHealth,
    Cursor,
    Feature,
    HeaderBlock,
    MessageChange,
    MessageRef,
    PollingConnector,
    RemoteMessage,
    ScopeState,
)
from mailport.connectors.folders import Folder, display_name, role_of
from mailport.connectors.mail import (
    MAX_LIMIT,
    Envelope,
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
    TrashFolderMissingError,
    UnsupportedFeatureError,
)
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
DELIMITER = "/"
STANDARD_FOLDERS = ("INBOX", "Drafts", "Sent", "Trash", "Junk")


@dataclass
class FakeMessage:
    raw: bytes
    at: datetime
    flags: set[str] = field(default_factory=set)  # neutral names and keywords
    labels: set[str] = field(default_factory=set)
    removed: bool = False


@dataclass
class FakeMail:
    """One remote mailbox. Items are ``m<n>`` (not numbers: the core must not care)."""

    features: frozenset[Feature] = ALL - {Feature.PUSH}
    epoch: str = "1"
    mail: dict[str, list[FakeMessage]] = field(default_factory=dict)
    folders: set[str] = field(default_factory=lambda: set(STANDARD_FOLDERS))
    labels: bool = False  # offers Gmail-like labels
    gone: set[str] = field(default_factory=set)  # items moved or deleted by after-processing
    read: set[str] = field(default_factory=set)
    moved: dict[str, str] = field(default_factory=dict)
    fail: dict[str, list[Exception]] = field(default_factory=dict)  # "connect" / "fetch" / action
    pings: int = 0  # liveness checks asked (the command pool's, after a pause)
    listeners: list[FakeConnector] = field(default_factory=list)

    def append(self, raw: bytes, *, scope: str = "INBOX", at: datetime | None = None) -> str:
        return self.put(scope, raw, at=at)

    def put(self, folder: str, raw: bytes, *, flags: Sequence[str] = (), at: datetime | None = None) -> str:
        """Store ``raw`` in ``folder`` (created if new); its item."""
        self.folders.add(folder)
        messages = self.mail.setdefault(folder, [])
        messages.append(FakeMessage(raw, at or datetime.now(UTC), set(flags)))
        for connector in self.listeners:
            connector.news()
        return f"m{len(messages)}"

    def messages(self, folder: str) -> list[tuple[str, FakeMessage]]:
        """(item, message) of the messages present in ``folder``, oldest first."""
        return [
            (f"m{n}", m)
            for n, m in enumerate(self.mail.get(folder, []), start=1)
            if not m.removed and f"m{n}" not in self.gone
        ]

    def find(self, ref: MessageRef) -> FakeMessage | None:
        if ref.epoch != self.epoch or not ref.item.startswith("m") or not ref.item[1:].isdigit():
            return None
        messages = self.mail.get(ref.scope, [])
        n = int(ref.item[1:])
        if not 1 <= n <= len(messages) or messages[n - 1].removed or ref.item in self.gone:
            return None
        return messages[n - 1]

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
        self._scope = "INBOX"

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
        self._scope = scope
        return ScopeState(scope, self.remote.epoch)

    async def baseline(self, state: ScopeState, *, since: datetime) -> Cursor:
        dates = [m.at for m in self.remote.mail.get(state.scope, [])]
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
                    len(messages[n - 1].raw),
                    flags=("\\Seen",) if self._seen(f"m{n}", messages[n - 1]) else (),
                    raw=messages[n - 1].raw,
                    source={"fake": {"n": n}},
                )
                for n in page
                if f"m{n}" not in self.remote.gone and not messages[n - 1].removed
            ]
            yield Batch(found, Cursor(cursor.scope, cursor.epoch, str(page[-1])))

    def _seen(self, item: str, message: FakeMessage) -> bool:
        return "seen" in message.flags or item in self.remote.read

    def item_source(self, ref: MessageRef) -> dict[str, Any]:
        return {"fake": {"n": int(ref.item[1:])}}

    async def list_folders(self) -> list[Folder]:
        self._need(Feature.FOLDERS)
        return [self._folder(path) for path in sorted(self.remote.folders, key=lambda s: (s != "INBOX", s))]

    def _folder(self, path: str) -> Folder:
        present = self.remote.messages(path)
        unseen = [item for item, m in present if not self._seen(item, m)]
        role = role_of(path, delimiter=DELIMITER)
        return Folder(path, DELIMITER, display_name(path, DELIMITER), role, len(present), len(unseen), True)

    def _need(self, feature: Feature) -> None:
        if not self.supports(feature):
            raise self._unsupported(feature)

    async def _act(self, feature: Feature, items: Sequence[str]) -> None:
        self._need(feature)
        self.remote.check(feature.value)

    def _opened(self, item: str) -> FakeMessage | None:
        return self.remote.find(MessageRef(self._scope, self.remote.epoch, item))

    async def mark_read(self, items: Sequence[str]) -> None:
        await self._act(Feature.FLAGS, items)
        self.remote.read.update(items)
        for item in items:
            if (message := self._opened(item)) is not None:
                message.flags.add("seen")

    async def move(self, items: Sequence[str], folder: str) -> None:
        await self._act(Feature.MOVE, items)
        self.remote.moved.update(dict.fromkeys(items, folder))
        self.remote.gone.update(items)

    async def delete(self, items: Sequence[str]) -> None:
        await self._act(Feature.DELETE, items)
        self.remote.gone.update(items)

    # ------------------------------------------------------------------ mailbox access

    def _ref(self, folder: str, item: str) -> MessageRef:
        return MessageRef(folder, self.remote.epoch, item)

    def _summary(self, folder: str, item: str, message: FakeMessage) -> MessageSummary:
        parsed = parse_message(message.raw, mailbox_id="fake", folder=folder)
        flags = set(message.flags) | ({"seen"} if item in self.remote.read else set())
        return MessageSummary(
            ref=self._ref(folder, item),
            folder=folder,
            envelope=Envelope(
                subject=parsed.subject,
                from_=parsed.from_,
                to=parsed.to,
                cc=parsed.cc,
                reply_to=parsed.reply_to,
                date=parsed.date,
                message_id=parsed.message_id,
                in_reply_to=parsed.in_reply_to,
            ),
            flags=tuple(sorted(flags)),
            labels=tuple(sorted(message.labels)),
            size=len(message.raw),
            received_at=message.at,
            has_attachments=any(a.disposition == "attachment" for a in parsed.attachments),
            preview=(parsed.text or "")[:200] or None,
            thread_key=parsed.thread_key,
        )

    def _require_folder(self, path: str) -> str:
        if path not in self.remote.folders:
            raise FolderNotFoundError(f"no folder {path!r} in this mailbox", folder=path)
        return path

    async def list_messages(self, query: ListQuery) -> MessagePage:
        self._need(Feature.FOLDERS)
        if not 1 <= query.limit <= MAX_LIMIT:
            raise InputError(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
        before = None
        if query.cursor:
            folder, epoch, before = _decode(query.cursor)
            if folder != query.folder:
                raise InvalidCursorError(f"the cursor belongs to folder {folder!r}", field="cursor")
            if epoch != self.remote.epoch:
                raise CursorExpiredError(f"folder {folder!r} was reset", folder=folder)
        present = self.remote.messages(self._require_folder(query.folder))[::-1]
        matching = [
            (item, m)
            for item, m in present
            if (before is None or int(item[1:]) < before)
            and (query.unseen is None or self._seen(item, m) is not query.unseen)
            and (query.since is None or m.at >= query.since)
        ]
        page = matching[: query.limit]
        more = len(matching) > query.limit
        cursor = _encode(query.folder, self.remote.epoch, int(page[-1][0][1:])) if more else None
        return MessagePage([self._summary(query.folder, item, m) for item, m in page], cursor)

    async def header_blocks(
        self, folder: str, *, since: datetime, fields: Sequence[str], chunk: int = 500
    ) -> AsyncIterator[list[HeaderBlock]]:
        self._need(Feature.FOLDERS)
        wanted = header_fields.wanted(fields)
        present = [(i, m) for i, m in self.remote.messages(self._require_folder(folder)) if m.at >= since]
        for start in range(0, len(present), max(chunk, 1)):
            yield [
                HeaderBlock(item, m.at, header_fields.select(m.raw, wanted))
                for item, m in present[start : start + max(chunk, 1)]
            ]

    async def fetch_message(self, ref: MessageRef) -> RemoteMessage:
        self._need(Feature.FOLDERS)
        message = self._find(ref)
        return RemoteMessage(
            ref.item,
            len(message.raw),
            flags=tuple(sorted(message.flags)),
            received_at=message.at,
            raw=message.raw,
            source={"fake": {"n": int(ref.item[1:])}},
            labels=tuple(sorted(message.labels)),
        )

    def _find(self, ref: MessageRef) -> FakeMessage:
        self._require_folder(ref.scope)
        message = self.remote.find(ref)
        if message is None:
            raise MessageNotFoundError(f"message {ref.item} is gone from {ref.scope!r}", ref=ref.encode())
        return message

    def _found(self, refs: Sequence[MessageRef]) -> list[FakeMessage]:
        missing = [ref.encode() for ref in refs if self.remote.find(ref) is None]
        if missing:
            raise MessageNotFoundError(f"{len(missing)} of the messages are gone", refs=missing)
        return [self._find(ref) for ref in refs]

    async def update_flags(self, refs: Sequence[MessageRef], change: FlagChange) -> None:
        self._need(Feature.FLAGS)
        add, remove = _flags(change.add), _flags(change.remove)
        if (change.add_labels or change.remove_labels) and not self.remote.labels:
            raise UnsupportedFeatureError("this mailbox has no labels")
        for message in self._found(refs):
            message.flags = (message.flags | add) - remove
            message.labels = (message.labels | change.add_labels) - change.remove_labels
            if "seen" in remove:
                self.remote.read.difference_update(ref.item for ref in refs)

    def _move(self, ref: MessageRef, message: FakeMessage, folder: str) -> MessageRef:
        message.removed = True
        flags = set(message.flags) | ({"seen"} if ref.item in self.remote.read else set())
        item = self.remote.put(folder, message.raw, flags=sorted(flags), at=message.at)
        return self._ref(folder, item)

    async def move_messages(self, refs: Sequence[MessageRef], folder: str) -> list[Moved]:
        self._need(Feature.MOVE)
        self._require_folder(folder)
        found = self._found(refs)
        return [
            Moved(ref, ref if ref.scope == folder else self._move(ref, message, folder))
            for ref, message in zip(refs, found, strict=True)
        ]

    async def delete_messages(self, refs: Sequence[MessageRef], *, permanent: bool = False) -> None:
        self._need(Feature.DELETE)
        trash = next((f for f in sorted(self.remote.folders) if self._folder(f).role == "trash"), None)
        if not permanent and trash is None:
            raise TrashFolderMissingError("this mailbox has no folder with the trash role")
        for ref, message in zip(refs, self._found(refs), strict=True):
            if permanent or ref.scope == trash:
                message.removed = True
            else:
                assert trash is not None
                self._move(ref, message, trash)

    async def import_message(
        self, folder: str, raw: bytes, *, flags: Sequence[str] = (), received_at: datetime | None = None
    ) -> MessageRef | None:
        self._need(Feature.FOLDERS)
        wanted = _flags(flags)
        self._require_folder(folder)
        return self._ref(folder, self.remote.put(folder, raw, flags=sorted(wanted), at=received_at))

    def _child(self, name: str, parent: str | None) -> str:
        if not name.strip() or DELIMITER in name or any(c in name for c in "*%"):
            raise InputError(f"the folder name {name!r} is not one level's name", field="name")
        if parent:
            return self._require_folder(parent) + DELIMITER + name
        return name

    async def create_folder(self, name: str, *, parent: str | None = None) -> Folder:
        self._need(Feature.FOLDERS)
        path = self._child(name, parent)
        if path in self.remote.folders:
            raise FolderExistsError(f"folder {path!r} already exists", folder=path)
        self.remote.folders.add(path)
        return self._folder(path)

    async def rename_folder(self, path: str, *, name: str, parent: str | None = None) -> Folder:
        self._need(Feature.FOLDERS)
        _not_inbox(path, "renamed")
        self._require_folder(path)
        here = path.rpartition(DELIMITER)[0]
        target = self._child(name, here or None) if parent is None else self._child(name, parent)
        if target != path:
            if target in self.remote.folders:
                raise FolderExistsError(f"folder {target!r} already exists", folder=target)
            for old in sorted(f for f in self.remote.folders if f == path or f.startswith(path + DELIMITER)):
                new = target + old[len(path) :]
                self.remote.folders.discard(old)
                self.remote.folders.add(new)
                if old in self.remote.mail:
                    self.remote.mail[new] = self.remote.mail.pop(old)
        return self._folder(target)

    async def delete_folder(self, path: str) -> None:
        self._need(Feature.FOLDERS)
        _not_inbox(path, "deleted")
        self._require_folder(path)
        self.remote.folders.discard(path)  # its sub-folders stay, as RFC 3501 has it
        self.remote.mail.pop(path, None)

    # ------------------------------------------------------------------ watching

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

    # ---- changes made on the server (declare Feature.CHANGES in ``remote.features`` to use)
    # The token is a snapshot (item -> "seen" / "" / "gone") of the items the cursor passed;
    # ``change_checks`` counts the calls (a tenant without opt-in must cost none); the step
    # "changes" of ``remote.fail_next`` makes a check fail.

    change_checks = 0

    async def changes_since(self, state: ScopeState, token: str | None, *, until: Cursor) -> ChangeSet:
        if not self.supports(Feature.CHANGES):
            raise self._unsupported(Feature.CHANGES)
        self.change_checks += 1
        self.remote.check("changes")
        passed = range(1, min(int(until.position), len(self.remote.mail.get(state.scope, []))) + 1)
        now = {
            f"m{n}": "gone" if f"m{n}" in self.remote.gone else "seen" if f"m{n}" in self.remote.read else ""
            for n in passed
        }
        saved = json.loads(token) if token else {"n": 0, "s": {}}
        before: dict[str, str] = saved["s"]
        version = f"v{saved['n'] + 1}"
        changes = [
            MessageChange(item, None if what == "gone" else (("seen",) if what else ()), version)
            for item, what in now.items()
            if token is not None and item in before and before[item] != what
        ]
        diffs = saved["n"] + (1 if changes else 0)
        return ChangeSet(changes, json.dumps({"n": diffs, "s": now}, sort_keys=True))

    # ------------------------------------------------------------------ search and threads

    def _parsed(self, folder: str) -> list[tuple[Message, MessageSummary]]:
        """Every present message of ``folder``, oldest first: parsed, and its summary with the
        thread root its key stands for."""
        out = []
        for item, stored in self.remote.messages(folder):
            message = parse_message(stored.raw, mailbox_id="fake", folder=folder)
            root = thread_root(
                message_id=message.message_id,
                in_reply_to=(message.in_reply_to,) if message.in_reply_to else (),
                references=message.references,
                content_sha256=message.sha256,
            )
            out.append((message, replace(self._summary(folder, item, stored), thread_root=root)))
        return out

    async def search_messages(self, query: SearchQuery) -> MessagePage:
        """FROM/TO/CC/SUBJECT/TEXT/BODY as case-insensitive substrings, headers, Message-ID,
        dates, seen, attachments and sizes; flagged, answered and native are refused (422)."""
        self._need(Feature.SEARCH)
        for name in ("flagged", "answered", "native"):
            if getattr(query, name) is not None:
                raise UnsupportedFeatureError(f"the fake connector cannot search by {name}")

        def has(value: str | None, *texts: str | None) -> bool:
            return value is None or any(value.lower() in (t or "").lower() for t in texts)

        def addresses(found: tuple[Address, ...]) -> str:
            return " ".join(f"{a.name} <{a.email}>" for a in found)

        below = int(query.cursor.removeprefix("f_")) if query.cursor else None
        matches = []
        for message, summary in reversed(self._parsed(self._require_folder(query.folder))):
            if below is not None and int(summary.ref.item[1:]) >= below:
                continue  # a cursor names where the last page ended, as the IMAP one does
            headers = {name.lower(): value for name, value in message.headers}
            if (
                has(query.from_, addresses(message.from_))
                and has(query.to, addresses(message.to))
                and has(query.cc, addresses(message.cc))
                and has(query.subject, message.subject)
                and has(query.body, message.text, message.html)
                and has(query.text, message.text, message.html, *headers.values())
                and has(query.message_id, message.message_id)
                and all(has(v, headers.get(k.lower())) for k, v in query.headers.items())
                and (query.seen is None or ("seen" in summary.flags) is query.seen)
                and (query.has_attachment is None or summary.has_attachments is query.has_attachment)
                and (query.larger is None or summary.size > query.larger)
                and (query.smaller is None or summary.size < query.smaller)
                and (query.since is None or (summary.received_at or query.since) >= query.since)
                and (query.before is None or (summary.received_at or query.before) < query.before)
            ):
                matches.append(summary)
        page = matches[: query.limit]
        more = len(matches) > query.limit
        return MessagePage(page, f"f_{page[-1].ref.item[1:]}" if more else None)

    async def thread_messages(self, root: str) -> list[MessageSummary]:
        """Every message of every folder whose thread root, In-Reply-To or own Message-ID is
        ``root`` or a message of the conversation found so far, oldest first."""
        self._need(Feature.THREADS)
        every = [summary for folder in sorted(self.remote.folders) for _, summary in self._parsed(folder)]
        known, found = {root}, {}
        grew = True
        while grew:
            grew = False
            for summary in every:
                envelope = summary.envelope
                if (
                    summary.ref not in found
                    and {
                        summary.thread_root,
                        envelope.in_reply_to,
                        envelope.message_id,
                    }
                    & known
                ):
                    found[summary.ref] = summary
                    known.add(envelope.message_id or "")
                    grew = True
        return sorted(
            found.values(), key=lambda s: s.envelope.date or s.received_at or datetime.min.replace(tzinfo=UTC)
        )

    async def ping(self) -> bool:
        """Alive unless the test failed the next ``"ping"`` (then the connection is gone)."""
        self.remote.pings += 1
        try:
            self.remote.check("ping")
        except Exception:
            self.connected = False
        return self.connected


def _flags(flags: Sequence[str] | frozenset[str]) -> set[str]:
    out = set()
    for flag in flags:
        if not flag or not flag.isascii() or not flag.isprintable() or any(c in flag for c in ' (){%*"\\]'):
            raise InputError(f"not a flag: {flag!r}", field="flags")
        lower = flag.lower()
        out.add(lower if lower in ("seen", "flagged", "answered", "draft") else flag)
    return out


def _not_inbox(path: str, action: str) -> None:
    if path.upper() == "INBOX":
        raise InputError(f"INBOX cannot be {action}", field="path")


def _encode(folder: str, epoch: str, n: int) -> str:
    packed = json.dumps([folder, epoch, n]).encode()
    return base64.urlsafe_b64encode(packed).decode().rstrip("=")


def _decode(cursor: str) -> tuple[str, str, int]:
    try:
        folder, epoch, n = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (isinstance(folder, str) and isinstance(epoch, str) and isinstance(n, int)):
            raise ValueError("not a cursor")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursorError("the cursor is not one this API returned", field="cursor") from exc
    return folder, epoch, n


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
