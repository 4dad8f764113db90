"""A whole connector in a few dozen lines: mail as ``.eml`` files in a directory (one
sub-directory per folder), polled, with ``delete``. It shows what a new kind of mailbox needs:
one module that fills the hooks of :mod:`mailport.connectors.base` and registers its key.
Nothing in the core changes for it (tests/integration/sync/test_directory_connector.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from mailport.connectors.base import Batch, Cursor, Feature, PollingConnector, RemoteMessage, ScopeState


class DirectoryConnector(PollingConnector):
    key = "directory"
    capabilities = frozenset({Feature.DELETE})

    def __init__(self, root: Path) -> None:
        self.root, self.is_connected = root, False

    async def connect(self) -> None:
        self.is_connected = self.root.is_dir()  # no login: the files are there or not

    async def disconnect(self) -> None:
        self.is_connected = False

    async def open(self, scope: str) -> ScopeState:
        self.folder = self.root / scope
        return ScopeState(scope, epoch="1")  # file names never get reused: one epoch

    def _names(self, after: str = "") -> list[str]:
        return sorted(p.name for p in self.folder.glob("*.eml") if p.name > after)

    async def baseline(self, state: ScopeState, *, since: datetime) -> Cursor:
        older = [n for n in self._names() if self._mtime(n) < since]
        return Cursor(state.scope, state.epoch, older[-1] if older else "")

    async def restart(self, state: ScopeState) -> Cursor:
        return Cursor(state.scope, state.epoch, "")

    def _mtime(self, name: str) -> datetime:
        return datetime.fromtimestamp((self.folder / name).stat().st_mtime, UTC)

    async def fetch_since(self, cursor: Cursor, *, chunk: int = 200) -> AsyncIterator[Batch]:
        names = self._names(cursor.position)
        for start in range(0, len(names), chunk):
            page = names[start : start + chunk]
            found = [RemoteMessage(n, len(raw := (self.folder / n).read_bytes()), raw=raw) for n in page]
            yield Batch(found, Cursor(cursor.scope, cursor.epoch, page[-1]))

    async def delete(self, items: Sequence[str]) -> None:
        for name in items:
            (self.folder / name).unlink(missing_ok=True)
