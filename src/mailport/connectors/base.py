"""The connector interface: what a watcher needs from any mail source, and nothing more.

Shaped like a django-anymail backend: the shared flow (cursor, pipeline, backoff, health,
after-processing) lives once in :mod:`mailport.sync`; a connector is one module that fills a
few hooks (:class:`Connector`) and registers itself under its key
(:func:`mailport.connectors.registry.register`).

Everything that locates mail is an opaque string to the core, so that IMAP (folder, UIDVALIDITY,
UID), the Gmail API (label, historyId, message id) and Microsoft Graph (folder, delta link,
message id) fit the same rows:

* :class:`Cursor` — ``scope`` (a folder, or the whole mailbox), ``epoch`` (the scope's identity:
  when it changes every position is void) and ``position`` (where the next fetch starts).
* ``item`` — a message's id within ``(scope, epoch)``.
* :class:`MessageRef` — the three together, as one public opaque string (``ref`` in payloads).

What a connector can do is declared (:class:`Feature`, ``capabilities``) and asked with
:meth:`Connector.supports`; the core raises :class:`~mailport.errors.UnsupportedFeatureError`
instead of probing for methods.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import orjson

from mailport.connectors.folders import Folder
from mailport.errors import InputError, UnsupportedFeatureError

if TYPE_CHECKING:
    from mailport.connectors.mail import (
        FlagChange,
        ListQuery,
        MessagePage,
        MessageSummary,
        Moved,
        SearchQuery,
    )
    from mailport.leases import Fence


class Feature(enum.StrEnum):
    """What a connector may be able to do."""

    PUSH = "push"  # changes are announced (IDLE, Pub/Sub, subscriptions) rather than polled
    FOLDERS = "folders"
    FLAGS = "flags"  # mark_read
    MOVE = "move"
    DELETE = "delete"
    SEARCH = "search"
    THREADS = "threads"
    SEND = "send"
    DRAFTS = "drafts"
    CHANGES = "changes"  # reports flag changes and deletions of known messages (changes_since)


@dataclass(frozen=True, slots=True)
class ScopeState:
    """What opening a scope tells the core: its name and its current epoch. A connector keeps
    what else it learnt (IMAP: UIDNEXT, EXISTS, HIGHESTMODSEQ) in a subclass of its own."""

    scope: str
    epoch: str


@dataclass(frozen=True, slots=True)
class Cursor:
    """How far a mailbox's scope has been ingested; every field is opaque to the core."""

    scope: str
    epoch: str
    position: str


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Where a message is, as the core stores it; :meth:`encode` is the public ``ref``."""

    scope: str
    epoch: str
    item: str

    PREFIX: ClassVar[str] = "ref_"

    def encode(self) -> str:
        """A URL-safe opaque string (base64url of a JSON triple, so any scope name fits)."""
        triple = [self.scope, self.epoch, self.item]
        try:  # orjson writes json.dumps(..., separators=(",", ":"), ensure_ascii=False)'s text, ~40x faster
            packed = orjson.dumps(triple)
        except TypeError:  # a lone surrogate: the stdlib's text, whose encoding then fails as it always did
            packed = json.dumps(triple, separators=(",", ":"), ensure_ascii=False).encode()
        return self.PREFIX + base64.urlsafe_b64encode(packed).decode().rstrip("=")

    @classmethod
    def decode(cls, ref: str) -> MessageRef:
        """The reverse of :meth:`encode`; :class:`~mailport.errors.InputError` for anything else."""
        body = ref.removeprefix(cls.PREFIX)
        try:
            if body == ref:
                raise ValueError("no prefix")
            parts = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            if not (isinstance(parts, list) and len(parts) == 3 and all(isinstance(p, str) for p in parts)):
                raise ValueError("not a triple of strings")
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise InputError(
                f"not a message reference: {ref[:60]!r}",
                field="ref",
                hint="Pass a `ref` exactly as a message.received event gave it.",
            ) from exc
        return cls(parts[0], parts[1], parts[2])


@dataclass(slots=True)
class RemoteMessage:
    """One fetched message. ``raw`` is the whole source, or None when it was over the size
    limit (then ``headers`` holds the header block and ``oversized`` is True). ``source`` holds
    the protocol's own details for the payload (``{"imap": {"folder": …, "uid": 42, …}}``);
    ``labels`` the source's labels where it has them (Gmail)."""

    item: str
    size: int
    flags: tuple[str, ...] = ()
    received_at: datetime | None = None
    raw: bytes | None = None
    headers: bytes | None = None
    oversized: bool = False
    source: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()  # Gmail's labels, where the source has them (mailbox access)


@dataclass(frozen=True, slots=True)
class Batch:
    """What one step of :meth:`Connector.fetch_since` yields: messages in order and the cursor
    just after them (the connector computes positions; the pipeline saves it as it is). A batch
    without messages may still move the cursor (a history id that advanced)."""

    messages: list[RemoteMessage]
    cursor: Cursor


@dataclass(frozen=True, slots=True)
class HeaderBlock:
    """One message's header fields, as :meth:`Connector.header_blocks` reads them for contact
    harvesting: ``block`` holds the fields asked for (or the whole header) in RFC 5322 form."""

    item: str
    received_at: datetime | None
    block: bytes


class ChangeKind(enum.StrEnum):
    NEW_MAIL = "new_mail"  # something may have arrived: fetch since the cursor
    EXPUNGED = "expunged"
    FLAGS = "flags"
    TICK = "tick"  # nothing happened within the interval (renewal, liveness, periodic catch-up)


@dataclass(frozen=True, slots=True)
class Change:
    kind: ChangeKind
    at: float  # loop.time() when the connector learnt of it (for latency figures)


@dataclass(frozen=True, slots=True)
class MessageChange:
    """One message changed on the server since the last :meth:`Connector.changes_since`.

    ``flags`` are neutral names (``seen``, ``flagged``, ``answered``, ``draft``) and keywords as
    the source spells them; None means the message is gone (expunged, or moved away).
    ``version`` tells this change of ``item`` apart from its other changes within the scope's
    epoch (IMAP: the MODSEQ, or ``s<n>`` for the n-th diff of a snapshot); it goes into the
    event's idempotency key. ``source`` holds the protocol's details for the payload."""

    item: str
    flags: tuple[str, ...] | None
    version: str
    labels: tuple[str, ...] | None = None
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def deleted(self) -> bool:
        return self.flags is None


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """What :meth:`Connector.changes_since` found, and the token to pass next time (opaque to
    the core; saved in the same transaction as the events it produced)."""

    changes: list[MessageChange]
    token: str


@dataclass(frozen=True, slots=True)
class ConnectorHealth:
    connected: bool
    push: bool  # IDLE (or a push API) rather than polling
    last_activity: datetime | None = None
    details: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Connector(Protocol):
    """A connection to one mailbox. Methods raise :class:`~mailport.errors.ProviderError`
    subclasses (authentication failures as :class:`~mailport.errors.AuthenticationError`), and
    :class:`~mailport.errors.UnsupportedFeatureError` for what the source cannot do."""

    key: ClassVar[str]
    capabilities: ClassVar[frozenset[Feature]]

    def supports(self, feature: Feature) -> bool:
        """Can it do ``feature`` now (IMAP: push only when the server offers IDLE)?"""
        ...

    @property
    def is_connected(self) -> bool: ...

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def open(self, scope: str) -> ScopeState: ...

    async def baseline(self, state: ScopeState, *, since: datetime) -> Cursor:
        """The first cursor of a scope: just before the first message that arrived at or after
        ``since`` (older mail is not ingested)."""
        ...

    async def restart(self, state: ScopeState) -> Cursor:
        """The cursor after the scope's epoch changed: every message of the new epoch is read
        again (the core recognises what was delivered before)."""
        ...

    def fetch_since(self, cursor: Cursor, *, chunk: int = 200) -> AsyncIterator[Batch]:
        """Every message after ``cursor``, in order, batch by batch — regardless of read state."""
        ...

    async def mark_read(self, items: Sequence[str]) -> None: ...

    async def move(self, items: Sequence[str], folder: str) -> None: ...

    async def delete(self, items: Sequence[str]) -> None: ...

    async def list_folders(self) -> list[Folder]:
        """Every folder of the mailbox, with its role and counts (needs :attr:`Feature.FOLDERS`)."""
        ...

    # --- reading and acting on any message (mailbox access; :mod:`mailport.connectors.mail`)

    async def list_messages(self, query: ListQuery) -> MessagePage:
        """A page of ``query.folder``, newest first (needs :attr:`Feature.FOLDERS`)."""
        ...

    def header_blocks(
        self, folder: str, *, since: datetime, fields: Sequence[str], chunk: int = 500
    ) -> AsyncIterator[list[HeaderBlock]]:
        """The header fields ``fields`` of every message of ``folder`` (a path as
        :meth:`list_folders` gives it) received at or after ``since``, oldest first, ``chunk``
        messages at a time, without marking anything read (needs :attr:`Feature.FOLDERS`).
        A message may come twice (the caller deduplicates); none may be missed."""
        ...

    def all_mail(self) -> str | None:
        """The path :meth:`header_blocks` takes for all of the mailbox's mail but junk, trash and
        drafts, where the source has that view without listing it as a folder (the Gmail API:
        a listing without a label); None otherwise (IMAP's All Mail is listed, with its role)."""
        ...

    async def search_messages(self, query: SearchQuery) -> MessagePage:
        """A page of the messages matching ``query``, newest first (:attr:`Feature.SEARCH`)."""
        ...

    async def fetch_message(self, ref: MessageRef) -> RemoteMessage:
        """One message's whole source (``raw``; headers only and ``oversized`` above the size
        limit), flags in neutral names as listings have them, without marking it read;
        :class:`~mailport.errors.NotFoundError` when it is gone."""
        ...

    async def thread_messages(self, root: str) -> list[MessageSummary]:
        """Every message of the conversation whose root Message-ID is ``root``, across the
        inbox and the sent folder (and All Mail where there is one), oldest first."""
        ...

    async def update_flags(self, refs: Sequence[MessageRef], change: FlagChange) -> None: ...

    async def move_messages(self, refs: Sequence[MessageRef], folder: str) -> list[Moved]: ...

    async def delete_messages(self, refs: Sequence[MessageRef], *, permanent: bool = False) -> None:
        """To the folder with the ``trash`` role, or expunged for good with ``permanent``
        (or when the message is in the trash already)."""
        ...

    async def import_message(
        self, folder: str, raw: bytes, *, flags: Sequence[str] = (), received_at: datetime | None = None
    ) -> MessageRef | None:
        """Store ``raw`` in ``folder`` (IMAP APPEND); its ref when the source tells it."""
        ...

    async def create_folder(self, name: str, *, parent: str | None = None) -> Folder:
        """A new folder named ``name`` (display form) under ``parent`` (a path), or at the top
        of the personal namespace, with its prefix and separator."""
        ...

    async def rename_folder(self, path: str, *, name: str, parent: str | None = None) -> Folder: ...

    async def delete_folder(self, path: str) -> None: ...

    # --- changes made on the server (opt-in events; :attr:`Feature.CHANGES`)

    async def changes_since(self, state: ScopeState, token: str | None, *, until: Cursor) -> ChangeSet:
        """Flag changes and deletions in the open scope since ``token`` (None: start now and
        report nothing), for the messages the ingestion cursor ``until`` has passed (later ones
        are announced by ``message.received``)."""
        ...

    async def folder_snapshot(self) -> list[Folder]:
        """The folder tree as cheaply as the source allows (counts may be left out), to tell
        created and deleted folders apart."""
        ...

    def report_changes(self, wanted: Callable[[], bool]) -> None:
        """While ``wanted()`` is true, :meth:`watch` also yields FLAGS / EXPUNGED changes that
        the source pushes; otherwise it stays quiet about them (no work for nobody)."""
        ...

    def under_lease(self, fence: Fence | None) -> None:
        """The watcher's lease: what the connector writes itself (its provider subscription's
        row) commits only while the lease is still this tenure (``LeaseLostError`` otherwise)."""
        ...

    def watch(self, *, interval: float) -> AsyncIterator[Change]:
        """Changes as they happen (push), or a TICK every ``interval`` seconds (poll); also a
        TICK at every renewal so the caller can catch up and apply pending work."""
        ...

    def wake(self) -> None:
        """Make :meth:`watch` yield a TICK now (pending actions, a push notification, shutdown)."""
        ...

    def item_source(self, ref: MessageRef) -> dict[str, Any]:
        """The protocol details of a stored message for a payload (``source``)."""
        ...

    def epoch_source(self, scope: str, old: str, new: str) -> dict[str, Any]:
        """The protocol details of an epoch change for ``mailbox.reset`` (``source``)."""
        ...

    async def health(self) -> ConnectorHealth: ...

    async def ping(self) -> bool:
        """Is this connection still usable? A cheap round trip (IMAP NOOP) that the command pool
        makes before lending a connection that sat unused for a while; False: reconnect."""
        ...

    async def unsubscribe(self) -> None:
        """Withdraw what the provider was asked to do for the mailbox (a push watch, push
        subscriptions), because the mailbox is being deleted; works on a connector that was
        never connected. Provider errors are raised (the caller decides they do not matter)."""
        ...


class BaseConnector:
    """The defaults a connector inherits: capabilities asked, not probed; actions it does not
    declare refused with :class:`~mailport.errors.UnsupportedFeatureError`; no protocol
    details in payloads. A subclass sets ``key`` and ``capabilities`` and fills the hooks."""

    key: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[Feature]] = frozenset()

    def supports(self, feature: Feature) -> bool:
        return feature in self.capabilities

    def _unsupported(self, feature: Feature, hint: str | None = None) -> UnsupportedFeatureError:
        return UnsupportedFeatureError(
            f"the {self.key} connector cannot {feature.value}",
            hint=hint
            or f"Choose an after-processing action the {self.key} connector supports "
            f"({', '.join(sorted(self.capabilities)) or 'none'}).",
        )

    async def mark_read(self, items: Sequence[str]) -> None:
        raise self._unsupported(Feature.FLAGS)

    async def move(self, items: Sequence[str], folder: str) -> None:
        raise self._unsupported(Feature.MOVE)

    async def delete(self, items: Sequence[str]) -> None:
        raise self._unsupported(Feature.DELETE)

    async def list_folders(self) -> list[Folder]:
        raise self._unsupported(Feature.FOLDERS, f"The {self.key} connector has no folders to list.")

    async def list_messages(self, query: ListQuery) -> MessagePage:
        raise self._unsupported(Feature.FOLDERS, f"The {self.key} connector cannot list messages.")

    async def header_blocks(
        self, folder: str, *, since: datetime, fields: Sequence[str], chunk: int = 500
    ) -> AsyncIterator[list[HeaderBlock]]:
        raise self._unsupported(Feature.FOLDERS, f"The {self.key} connector cannot read header fields.")
        yield []  # an async generator, like the connectors' own

    def all_mail(self) -> str | None:
        return None

    async def search_messages(self, query: SearchQuery) -> MessagePage:
        raise self._unsupported(Feature.SEARCH, f"The {self.key} connector cannot search.")

    async def fetch_message(self, ref: MessageRef) -> RemoteMessage:
        raise self._unsupported(
            Feature.FOLDERS, f"The {self.key} connector cannot read a message by reference."
        )

    async def thread_messages(self, root: str) -> list[MessageSummary]:
        raise self._unsupported(Feature.THREADS, f"The {self.key} connector cannot gather threads.")

    async def update_flags(self, refs: Sequence[MessageRef], change: FlagChange) -> None:
        raise self._unsupported(Feature.FLAGS, f"The {self.key} connector cannot change flags.")

    async def move_messages(self, refs: Sequence[MessageRef], folder: str) -> list[Moved]:
        raise self._unsupported(Feature.MOVE, f"The {self.key} connector cannot move messages.")

    async def delete_messages(self, refs: Sequence[MessageRef], *, permanent: bool = False) -> None:
        raise self._unsupported(Feature.DELETE, f"The {self.key} connector cannot delete messages.")

    async def import_message(
        self, folder: str, raw: bytes, *, flags: Sequence[str] = (), received_at: datetime | None = None
    ) -> MessageRef | None:
        raise self._unsupported(Feature.FOLDERS, f"The {self.key} connector cannot import messages.")

    async def create_folder(self, name: str, *, parent: str | None = None) -> Folder:
        raise self._unsupported(Feature.FOLDERS, f"The {self.key} connector has no folders to create.")

    async def rename_folder(self, path: str, *, name: str, parent: str | None = None) -> Folder:
        raise self._unsupported(Feature.FOLDERS, f"The {self.key} connector has no folders to rename.")

    async def delete_folder(self, path: str) -> None:
        raise self._unsupported(Feature.FOLDERS, f"The {self.key} connector has no folders to delete.")

    def item_source(self, ref: MessageRef) -> dict[str, Any]:
        return {}

    async def ping(self) -> bool:
        """Without a cheap round trip the connection is trusted; a failure on use discards it."""
        return True

    async def unsubscribe(self) -> None:
        """Nothing was asked of the provider (IMAP's IDLE ends with its connection)."""

    def epoch_source(self, scope: str, old: str, new: str) -> dict[str, Any]:
        return {}

    # --- changes made on the server

    _changes_wanted: Callable[[], bool] | None = None
    lease_fence: Fence | None = None

    def report_changes(self, wanted: Callable[[], bool]) -> None:
        self._changes_wanted = wanted

    def under_lease(self, fence: Fence | None) -> None:
        self.lease_fence = fence

    def changes_reported(self) -> bool:
        """Does anyone want the changes :meth:`watch` could report now?"""
        return self._changes_wanted is not None and self._changes_wanted()

    async def changes_since(self, state: ScopeState, token: str | None, *, until: Cursor) -> ChangeSet:
        raise self._unsupported(
            Feature.CHANGES, f"The {self.key} connector cannot report changes made on the server."
        )

    async def folder_snapshot(self) -> list[Folder]:
        return await self.list_folders()


class PollingConnector(BaseConnector):
    """A connector without push: :meth:`watch` yields a TICK every ``interval`` seconds, or at
    once after :meth:`wake`, so such a connector writes nothing for watching."""

    _wake_event: asyncio.Event | None = None

    def _woken(self) -> asyncio.Event:
        if self._wake_event is None:
            self._wake_event = asyncio.Event()
        return self._wake_event

    def wake(self) -> None:
        self._woken().set()

    async def keepalive(self) -> None:
        """Called before every TICK (a liveness round trip, if the protocol has one)."""

    async def watch(self, *, interval: float) -> AsyncIterator[Change]:
        loop = asyncio.get_running_loop()
        woken = self._woken()
        while True:
            try:
                await asyncio.wait_for(woken.wait(), interval)
            except TimeoutError:
                pass
            woken.clear()  # a wake() while the caller handles this TICK gives another at once
            await self.keepalive()
            yield Change(ChangeKind.TICK, loop.time())


# What a mailbox's after-processing action needs from its connector.
def action_feature(action: str) -> Feature | None:
    """The feature ``action`` (``mark_read`` / ``move:<folder>`` / ``delete`` / ``none``) needs."""
    if action == "mark_read":
        return Feature.FLAGS
    if action == "delete":
        return Feature.DELETE
    if action.startswith("move:"):
        return Feature.MOVE
    return None
