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

ALL = frozenset({Feature.PUSH, Feature.FOLDERS, Feature.FLAGS, Feature.MOVE, Feature.DELETE})


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
    pings: int = 0  # liveness checks asked (the command pool's, after a pause)
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

    async def ping(self) -> bool:
        """Alive unless the test failed the next ``"ping"`` (then the connection is gone)."""
        self.remote.pings += 1
        try:
            self.remote.check("ping")
        except Exception:
            self.connected = False
        return self.connected


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
