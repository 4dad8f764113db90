"""Changes made on the server as events: ``message.updated``, ``message.deleted``,
``folder.created`` and ``folder.deleted`` — one watcher's part, per scope.

Why apart from the watcher: the watcher's loop only says *when* (after connecting, at every
change it handles, and for folders every ``folder_interval`` seconds); *whether* (the tenant opted
in, :mod:`mailport.sync.interest`), *what* (the connector's :meth:`changes_since` and
:meth:`folder_snapshot`) and the payloads live here.

* **Durable and exact.** A stream's token (per mailbox: ``scope:<scope>`` with the scope's epoch,
  and ``folders``) is saved in the transaction of the events it produced, fenced by the watcher's
  lease like a fetch chunk: a restart continues from the last committed token, so a change is
  neither lost nor appended twice (and the idempotency keys would absorb a repeat anyway).
* **Idempotency keys.** ``upd:<mailbox>:<scope>:<epoch>:<item>:<version>`` (IMAP: version =
  MODSEQ, or ``s<n>`` for the n-th snapshot diff that found changes),
  ``del:<mailbox>:<scope>:<epoch>:<item>`` (an item is never reused within an epoch), and
  ``folder.created|folder.deleted:<mailbox>:<n>:<path>`` (n counts the folder diffs that found
  changes: a folder deleted and created again gets new keys); a folder name longer than 300
  characters appears as ``sha256=<hex>`` (keys hold 600).
* **Free when nobody wants it.** Nothing here runs, and the connector is not asked, unless the
  tenant has an active webhook endpoint listing the type (:attr:`ChangeTracker.checks` counts
  the connector calls, for tests and the status page).
* **Own actions included.** A message the mailbox's after-processing marked read, moved or
  deleted produces ``message.updated`` / ``message.deleted`` like anyone else's change: the
  application learns the server's state, whoever changed it.
* **Optional, so never fatal.** A check the server refuses (a tagged NO/BAD) is logged and
  that stream waits ``REFUSED_PAUSE`` (10 min); ingestion goes on. A broken connection is the
  watcher's business as always (reconnect with backoff).
* **A new stream starts now**: the first check (or the first after an epoch change) reports
  nothing and records where the server is.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from mailport.clock import Clock
from mailport.connectors.base import ChangeSet, Connector, Feature, MessageChange, MessageRef, ScopeState
from mailport.connectors.folders import Folder, Role
from mailport.errors import CommandError, MailportError, UnsupportedFeatureError
from mailport.events import EventLog, EventType, NewEvent, append_many
from mailport.leases import Fence
from mailport.mailboxes.models import Mailbox
from mailport.sync import repository as repo
from mailport.sync.interest import NOTHING, ChangeInterest

log = logging.getLogger(__name__)

MESSAGE_TYPES = frozenset({EventType.MESSAGE_UPDATED.value, EventType.MESSAGE_DELETED.value})
FOLDER_TYPES = frozenset({EventType.FOLDER_CREATED.value, EventType.FOLDER_DELETED.value})
FOLDERS_STREAM = "folders"
FOLDER_INTERVAL = 300.0  # seconds between two folder diffs (and at every connection)
REFUSED_PAUSE = 600.0  # seconds a stream waits after the server refused its check
KEY_NAME_LIMIT = 300  # longer folder names are hashed in idempotency keys


def scope_stream(scope: str) -> str:
    return f"scope:{scope}"


class ChangeTracker:
    """The change streams of one mailbox's watcher."""

    __slots__ = (  # one per watcher: thousands per process
        "connector",
        "track_folders",
        "events",
        "database",
        "_mailbox",
        "interest",
        "clock",
        "fence",
        "folder_interval",
        "checks",
        "_folders_at",
        "_timer",
        "_pauses",
    )

    def __init__(
        self,
        connector: Connector,
        *,
        log_: EventLog,
        mailbox: Callable[[], Mailbox],
        interest: ChangeInterest | None,
        clock: Clock,
        fence: Fence | None = None,
        folder_interval: float = FOLDER_INTERVAL,
        folders: bool = True,
    ) -> None:
        """``folders``: this watcher also diffs the folder list (a mailbox watching several
        folders has it done by its first folder's watcher only, so each change is told once)."""
        self.connector = connector
        self.track_folders = folders
        self.events = log_
        self.database = log_.database
        self._mailbox = mailbox
        self.interest = interest
        self.clock = clock
        self.fence = fence
        self.folder_interval = folder_interval
        self.checks = 0  # connector calls made for change events
        self._folders_at: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._pauses: dict[str, float] = {}  # stream -> loop time until which it is not checked

    def wanted(self) -> frozenset[str]:
        if self.interest is None:
            return NOTHING
        return self.interest.wanted(self._mailbox().tenant_id)

    def reporting(self) -> bool:
        """Should the connector's watch report flag changes and expunges it hears of?"""
        return bool(self.wanted() & MESSAGE_TYPES) and self.connector.supports(Feature.CHANGES)

    async def after_connect(self, scope: ScopeState) -> int:
        self._folders_at = None
        return await self.step(scope)

    async def step(self, scope: ScopeState) -> int:
        """Both streams, folders only when due; returns how many events were appended."""
        return await self.messages(scope) + await self.folders()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ------------------------------------------------------------------ messages

    async def messages(self, scope: ScopeState) -> int:
        wanted = self.wanted() & MESSAGE_TYPES
        if not wanted or not self.connector.supports(Feature.CHANGES) or self._paused("messages"):
            return 0
        try:
            return await self._messages(scope, wanted)
        except (CommandError, UnsupportedFeatureError) as exc:
            self._refused("messages", exc)
            return 0

    async def _messages(self, scope: ScopeState, wanted: frozenset[str]) -> int:
        mailbox = self._mailbox()
        stream = scope_stream(scope.scope)
        async with self.database.connect() as conn:
            stored = await repo.get_change_token(conn, mailbox.id, stream)
            cursor = await repo.get_cursor(conn, mailbox.id, scope.scope)
        if cursor is None:  # ingestion places the first cursor before changes are looked at
            return 0
        token = stored.token if stored is not None and stored.epoch == scope.epoch else None
        self.checks += 1
        found = await self.connector.changes_since(scope, token, until=cursor)
        if token == found.token and not found.changes:
            return 0
        now = self.clock()
        async with self.events.transaction() as conn:
            known = await repo.message_ids(
                conn, mailbox.id, scope.scope, scope.epoch, [c.item for c in found.changes]
            )
            items = _message_events(mailbox, scope, found, known, wanted, at=now.isoformat())
            appended = await append_many(conn, items, now=now)
            await repo.save_change_token(conn, mailbox.id, stream, found.token, epoch=scope.epoch, now=now)
            if self.fence is not None:
                await self.fence(conn, what="changes")  # last: the lease must still be ours when this commits
        return len(appended)

    # ------------------------------------------------------------------ folders

    async def folders(self) -> int:
        wanted = self.wanted() & FOLDER_TYPES if self.track_folders else frozenset()
        if not wanted or not self.connector.supports(Feature.FOLDERS) or self._paused("folders"):
            return 0
        try:
            return await self._folders(wanted)
        except (CommandError, UnsupportedFeatureError) as exc:
            self._refused("folders", exc)
            return 0

    async def _folders(self, wanted: frozenset[str]) -> int:
        loop = asyncio.get_running_loop()
        if self._folders_at is not None and loop.time() - self._folders_at < self.folder_interval:
            return 0
        self._folders_at = loop.time()
        self._arm(loop)
        mailbox = self._mailbox()
        self.checks += 1
        tree = {f.path: f for f in await self.connector.folder_snapshot()}
        async with self.database.connect() as conn:
            stored = await repo.get_change_token(conn, mailbox.id, FOLDERS_STREAM)
        old = _decode_folders(stored.token) if stored is not None else None
        diffs, before = old if old is not None else (0, None)
        items: list[NewEvent] = []
        now = self.clock()
        if before is not None:
            created = [tree[p] for p in sorted(set(tree) - set(before))]
            deleted = [_folder(p, before[p]) for p in sorted(set(before) - set(tree))]
            if created or deleted:
                diffs += 1
            at = now.isoformat()
            items = [
                _folder_event(mailbox, EventType.FOLDER_CREATED, f, diffs, at)
                for f in created
                if EventType.FOLDER_CREATED.value in wanted
            ] + [
                _folder_event(mailbox, EventType.FOLDER_DELETED, f, diffs, at)
                for f in deleted
                if EventType.FOLDER_DELETED.value in wanted
            ]
        token = _encode_folders(diffs, tree.values())
        if stored is not None and stored.token == token:
            return 0
        async with self.events.transaction() as conn:
            appended = await append_many(conn, items, now=now)
            await repo.save_change_token(conn, mailbox.id, FOLDERS_STREAM, token, epoch=None, now=now)
            if self.fence is not None:
                await self.fence(conn, what="changes")
        return len(appended)

    # ------------------------------------------------------------------ refusals

    def _paused(self, stream: str) -> bool:
        until = self._pauses.get(stream)
        return until is not None and asyncio.get_running_loop().time() < until

    def _refused(self, stream: str, exc: MailportError) -> None:
        """The server refused a command of the check (a tagged NO/BAD leaves the session in step):
        change events are optional, so the watcher goes on and the stream waits a while."""
        log.warning(
            "mailbox %s: looking for changes (%s) refused: [%s] %s; again in %g s",
            self._mailbox().id,
            stream,
            exc.code,
            exc.message,
            REFUSED_PAUSE,
        )
        self._pauses[stream] = asyncio.get_running_loop().time() + REFUSED_PAUSE

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wake the watch (an IDLE waits up to its renewal otherwise) when the next diff is due."""
        self.stop()
        self._timer = loop.call_later(self.folder_interval, self.connector.wake)


# ---------------------------------------------------------------------- payloads


def _message_events(
    mailbox: Mailbox,
    scope: ScopeState,
    found: ChangeSet,
    known: dict[str, str],
    wanted: frozenset[str],
    *,
    at: str,
) -> list[NewEvent]:
    out: list[NewEvent] = []
    for change in found.changes:
        kind = EventType.MESSAGE_DELETED if change.deleted else EventType.MESSAGE_UPDATED
        if kind.value not in wanted:
            continue
        out.append(
            NewEvent(
                mailbox.tenant_id,
                mailbox.id,
                kind,
                _message_payload(mailbox, scope, change, known.get(change.item), at),
                _message_key(mailbox.id, scope, change),
            )
        )
    return out


def _short(name: str) -> str:
    """A folder name as it goes into a key: as it is, or hashed when long (keys hold 600
    characters, folder names up to 500)."""
    if len(name) <= KEY_NAME_LIMIT:
        return name
    return "sha256=" + hashlib.sha256(name.encode()).hexdigest()


def _message_key(mailbox_id: str, scope: ScopeState, change: MessageChange) -> str:
    where = f"{mailbox_id}:{_short(scope.scope)}:{scope.epoch}:{change.item}"
    return f"del:{where}" if change.deleted else f"upd:{where}:{change.version}"


def _message_payload(
    mailbox: Mailbox, scope: ScopeState, change: MessageChange, message_id: str | None, at: str
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "mailbox_id": mailbox.id,
        "connector": mailbox.connector,
        "folder": scope.scope,
        "ref": MessageRef(scope.scope, scope.epoch, change.item).encode(),
        "message_id": message_id,
    }
    if not change.deleted:
        payload["flags"] = list(change.flags or ())
        if change.labels is not None:
            payload["labels"] = list(change.labels)
    payload["source"] = change.source
    payload["at"] = at
    return payload


def _folder_event(mailbox: Mailbox, kind: EventType, folder: Folder, diffs: int, at: str) -> NewEvent:
    payload = {
        "mailbox_id": mailbox.id,
        "connector": mailbox.connector,
        "path": folder.path,
        "name": folder.name,
        "delimiter": folder.delimiter,
        "role": folder.role.value if folder.role is not None else None,
        "at": at,
    }
    key = f"{kind.value}:{mailbox.id}:{diffs}:{_short(folder.path)}"
    return NewEvent(mailbox.tenant_id, mailbox.id, kind, payload, key)


def _encode_folders(diffs: int, folders: Iterable[Folder]) -> str:
    tree = {
        f.path: [f.name, f.delimiter, f.role.value if f.role is not None else None]
        for f in sorted(folders, key=lambda f: f.path)
    }
    return json.dumps({"n": diffs, "f": tree}, separators=(",", ":"), ensure_ascii=False)


def _decode_folders(text: str) -> tuple[int, dict[str, list[Any]]] | None:
    try:
        raw = json.loads(text)
        return int(raw["n"]), {str(path): list(value) for path, value in raw["f"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _folder(path: str, saved: list[Any]) -> Folder:
    """A folder that is gone, as the last diff saw it."""
    name, delimiter, role = (saved + [None, None, None])[:3]
    return Folder(
        path=path,
        delimiter=delimiter,
        name=name or path,
        role=Role(role) if role else None,
        messages=None,
        unseen=None,
        subscribed=False,
    )
