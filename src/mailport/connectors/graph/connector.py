"""The Microsoft Graph connector (``graph``): :class:`~mailport.connectors.base.Connector` on
:class:`~mailport.connectors.graph.client.GraphClient`.

It translates, like the IMAP connector: the scope is the folder's path (``INBOX`` for the inbox),
the epoch the folder's immutable id, an item the message's immutable id, and the position the
folder's delta stream (:mod:`.sync`). Watching is polling with a wake-up
(:class:`~mailport.connectors.base.PollingConnector`): a Graph change notification, received by
``/v1/push/graph/<channel>`` (:mod:`.push`), wakes the watcher at once; while the folder's
subscription (:mod:`.subscribe`) is live the poll is only the fallback (``context.poll_seconds``),
without one it is the mailbox's ``check_interval``. Reconnecting, cursors and backoff belong to
the watcher (:mod:`mailport.sync.watcher`). Mailbox access (folders, messages, flags, drafts)
is :mod:`.access`, through :class:`~mailport.connectors.delegated.AccessDelegation`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, ClassVar

from mailport.clock import Clock, utc_now
from mailport.connectors.api_http import ApiHttp, mailbox_limiter
from mailport.connectors.base import (
    Batch,
    Change,
    ChangeKind,
    ChangeSet,
    ConnectorHealth,
    Cursor,
    Feature,
    HeaderBlock,
    MessageRef,
    PollingConnector,
    ScopeState,
)
from mailport.connectors.delegated import AccessDelegation, AccessModule
from mailport.connectors.graph import access as graph_access
from mailport.connectors.graph import folders as graph_folders
from mailport.connectors.graph import headers as graph_headers
from mailport.connectors.graph import push as _push  # noqa: F401  (registers the push receiver)
from mailport.connectors.graph import sync
from mailport.connectors.graph import transport as _transport  # noqa: F401  (registers the transport)
from mailport.connectors.graph.client import GraphClient
from mailport.connectors.graph.models import GraphFolder, format_datetime
from mailport.connectors.graph.subscribe import FolderSubscription, unsubscribe_mailbox
from mailport.connectors.registry import ConnectorContext, register
from mailport.errors import ConfigurationError, ConnectionLostError, MailportError
from mailport.leases import Fence
from mailport.mailboxes.models import Mailbox
from mailport.net.guard import HostGuard

log = logging.getLogger(__name__)


class GraphConnector(AccessDelegation, PollingConnector):
    """One Microsoft 365 / Outlook.com mailbox folder over Graph; mailbox access is
    :mod:`.access` (:class:`AccessDelegation`)."""

    key = "graph"
    access: ClassVar[AccessModule] = graph_access
    capabilities = frozenset(Feature)  # everything a connector can declare

    @classmethod
    def build(cls, mailbox: Mailbox, context: ConnectorContext) -> GraphConnector:
        """The registry's factory."""
        return cls(mailbox, context)

    def __init__(self, mailbox: Mailbox, context: ConnectorContext, *, clock: Clock = utc_now) -> None:
        self.mailbox = mailbox
        self.context = context
        self.clock = clock
        self._http: ApiHttp | None = None
        self._client: GraphClient | None = None
        self._reader: sync.DeltaReader | None = None  # kept across reconnects (what was delivered)
        self.subscription = FolderSubscription(mailbox, context.push, clock=clock)
        self._scope: ScopeState | None = None
        self._last_activity: datetime | None = None
        self.account: str | None = None

    def under_lease(self, fence: Fence | None) -> None:
        super().under_lease(fence)
        self.subscription.fence = fence

    # ------------------------------------------------------------------ connection

    @property
    def is_connected(self) -> bool:
        return self._client is not None

    def supports(self, feature: Feature) -> bool:
        """Push only while the folder's subscription is live."""
        if feature is Feature.PUSH:
            return self.subscription.status.live
        return feature in self.capabilities

    def _new_http(self) -> ApiHttp:
        api = self.context.api
        if api is None:
            raise ConfigurationError(
                f"mailbox {self.mailbox.id}: no Microsoft Graph endpoint for provider "
                f"{self.mailbox.provider_id!r}",
                hint="A graph mailbox needs the OAuth provider microsoft (its apis.graph entry).",
            )
        ssl_context = self.context.ssl_context(None) if self.context.ssl_context is not None else None
        return ApiHttp(
            api.base_url,
            guard=self.context.guard or HostGuard(allow_private=True),  # None: the operator's own
            token_source=self.context.token_source,
            force_refresh=self.context.force_refresh,
            limiter=mailbox_limiter(self.mailbox.id, self.context.api_concurrency),
            connector=self.key,
            ssl_context=ssl_context,
        )

    async def connect(self) -> None:
        await self.disconnect()
        http = self._new_http()
        client = GraphClient(http)
        try:
            self.account, _ = await client.me()
        except BaseException:
            await http.aclose()
            raise
        self._http, self._client = http, client
        if self._reader is None:
            self._reader = sync.DeltaReader(client, max_bytes=self.context.max_message_bytes)
        self._reader.client = client
        self._touch()

    async def disconnect(self) -> None:
        http, self._http, self._client = self._http, None, None
        if http is not None:
            try:
                await http.aclose()
            except Exception:  # best effort: the client is going anyway
                log.debug("closing the Graph client failed", exc_info=True)

    @property
    def client(self) -> GraphClient:
        if self._client is None:
            raise ConnectionLostError(f"mailbox {self.mailbox.id}: not connected to Graph")
        return self._client

    def _touch(self) -> None:
        self._last_activity = self.clock()

    async def ping(self) -> bool:
        """One cheap request (``/me``); False: build a new client."""
        if self._client is None:
            return False
        try:
            await self._client.me()
        except MailportError:
            return False
        return True

    # ------------------------------------------------------------------ reading

    async def _folder(self, spec: str) -> GraphFolder:
        """The folder ``spec`` names (``INBOX`` costs one request, other paths the listing)."""
        if graph_folders.canonical(spec) == graph_folders.INBOX:
            inbox = await self.client.well_known("inbox")
            return GraphFolder(inbox.id, inbox.display_name, inbox.parent_id, "inbox", path="INBOX")
        return graph_folders.resolve(await self.client.folders(), spec)

    async def open(self, scope: str) -> ScopeState:
        folder = await self._folder(scope)
        self._scope = ScopeState(scope=folder.path, epoch=folder.id)
        self._touch()
        return self._scope

    async def baseline(self, state: ScopeState, *, since: datetime) -> Cursor:
        """Positioned before the messages received since ``since``: the first fetch runs a delta
        round filtered on ``receivedDateTime ge since`` and ends with the folder's deltaLink."""
        return Cursor(state.scope, state.epoch, sync.baseline_position(since).encode())

    async def restart(self, state: ScopeState) -> Cursor:
        """The whole folder again (a new folder id: it was deleted and made again)."""
        return Cursor(state.scope, state.epoch, sync.Position(None, None).encode())

    async def fetch_since(self, cursor: Cursor, *, chunk: int = 200) -> AsyncIterator[Batch]:
        self.client  # noqa: B018  (refused when not connected)
        assert self._reader is not None
        async for batch in self._reader.fetch_since(cursor, chunk=chunk, now=self.clock()):
            self._touch()
            yield batch

    async def changes_since(self, state: ScopeState, token: str | None, *, until: Cursor) -> ChangeSet:
        found = await sync.changes(self.client, state.epoch, token, now=self.clock())
        self._touch()
        return found

    async def header_blocks(
        self, folder: str, *, since: datetime, fields: Sequence[str], chunk: int = 500
    ) -> AsyncIterator[list[HeaderBlock]]:
        """Contact harvesting: see :mod:`.headers`."""
        async for found in graph_headers.header_blocks(self, folder, since=since, fields=fields, chunk=chunk):
            self._touch()
            yield found

    def item_source(self, ref: MessageRef) -> dict[str, Any]:
        return {
            "graph": {"id": ref.item, "conversation_id": None, "folder_id": ref.epoch, "change_key": None}
        }

    def epoch_source(self, scope: str, old: str, new: str) -> dict[str, Any]:
        return {"graph": {"folder": scope, "old_folder_id": old, "new_folder_id": new}}

    # ------------------------------------------------------------------ after-processing

    async def mark_read(self, items: Sequence[str]) -> None:
        for item in items:
            await self.client.update(item, is_read=True)

    async def move(self, items: Sequence[str], folder: str) -> None:
        if items:
            target = await self._folder(folder)
            for item in items:
                await self.client.move(item, target.id)

    async def delete(self, items: Sequence[str]) -> None:
        for item in items:
            await self.client.delete(item)

    async def unsubscribe(self) -> None:
        """Every subscription of the mailbox deleted at Graph, and its push channel: the mailbox
        is being deleted (a client of its own when not connected)."""
        push = self.context.push
        if push is None:
            return
        if self._client is not None:
            await unsubscribe_mailbox(self._client, push, self.mailbox.id)
            return
        http = self._new_http()
        try:
            await unsubscribe_mailbox(GraphClient(http), push, self.mailbox.id)
        finally:
            await http.aclose()

    # ------------------------------------------------------------------ watching

    async def _subscribe(self) -> None:
        if self._scope is not None:
            await self.subscription.ensure(self.client, self._scope.scope, self._scope.epoch)

    async def keepalive(self) -> None:
        """Before every tick: the subscription renewed, recreated or reauthorized as needed."""
        await self._subscribe()

    def _wait(self, interval: float) -> float:
        """Until the next tick: the fallback poll while subscribed (never past a renewal)."""
        status = self.subscription.status
        wait = self.context.poll_seconds if status.live else interval
        due = self.subscription.due_in(self.clock())
        if due is None and status.renew_at is not None:  # a failed subscribe: try again then
            due = max(0.0, (status.renew_at - self.clock()).total_seconds())
        return max(0.05, min(wait, due)) if due is not None else wait

    async def watch(self, *, interval: float) -> AsyncIterator[Change]:
        """A tick at once once subscribed (what arrived while subscribing), then a tick at every
        wake-up (a notification), renewal or poll interval."""
        loop = asyncio.get_running_loop()
        woken = self._woken()
        await self._subscribe()
        yield Change(ChangeKind.TICK, loop.time())
        while True:
            try:
                await asyncio.wait_for(woken.wait(), self._wait(interval))
            except TimeoutError:
                pass
            woken.clear()  # a wake() while the caller handles this tick gives another at once
            await self.keepalive()
            yield Change(ChangeKind.TICK, loop.time())

    async def health(self) -> ConnectorHealth:
        status = self.subscription.status
        details = {"subscription": status.why}
        if status.expires_at is not None:
            details["subscription_expires_at"] = format_datetime(status.expires_at)
        if status.last_lifecycle:
            details["last_lifecycle"] = status.last_lifecycle
        reader = self._reader
        if reader is not None and reader.recoveries:
            details["delta_recoveries"] = str(reader.recoveries)
            if reader.last_recovery is not None:
                details["last_delta_recovery"] = format_datetime(reader.last_recovery)
        return ConnectorHealth(
            connected=self.is_connected,
            push=status.live,
            last_activity=self._last_activity,
            details=details,
        )


register(GraphConnector.key, GraphConnector.build, GraphConnector.capabilities)
