"""The Gmail API connector (``gmail_api``): a :class:`~mailport.connectors.base.PollingConnector`
on :class:`~mailport.connectors.gmail.client.GmailClient`.

It translates, as every connector does (docs/api-connectors.md):

* **scope / epoch / item / position**: a label (system id or user label name) / the label's id /
  the message id / a historyId with the time it was current (:mod:`.sync`);
* **first sync** (:meth:`baseline`): the profile's historyId now, and a re-list of the label's
  messages that arrived since the mailbox was added; **epoch change** (the label made again):
  everything of the new label, listed;
* **catch-up** (:meth:`fetch_since`): ``history.list`` filtered by the label; an expired historyId
  (Gmail answers 404) is recovered here, without an epoch change and without ``mailbox.reset``:
  a fresh historyId first, then a re-list of the label from an hour before the last known point
  (the core drops what it delivered already), recorded in health details, a log line and
  ``mailport_sync_recoveries_total{connector="gmail_api", reason="history_expired"}``;
* **watching**: a TICK at every wake-up (push notifications wake every folder watcher of the
  mailbox) or every interval: ``context.poll_seconds`` while a ``users.watch`` is live (the
  fallback poll), the mailbox's ``check_interval`` otherwise; the watch is kept alive before
  every TICK (:mod:`.push`).

Mailbox access (folders, messages, flags, drafts) is delegated to
:mod:`mailport.connectors.gmail.access`; sending is :mod:`mailport.connectors.gmail.transport`,
registered for ``gmail_api`` mailboxes here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
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
    MessageChange,
    MessageRef,
    PollingConnector,
    ScopeState,
)
from mailport.connectors.delegated import AccessDelegation, AccessModule
from mailport.connectors.gmail import access as gmail_access
from mailport.connectors.gmail import headers as gmail_headers
from mailport.connectors.gmail import sync
from mailport.connectors.gmail.client import GmailClient
from mailport.connectors.gmail.models import HistoryExpiredError, HistoryMessage, HistoryRecord
from mailport.connectors.gmail.push import KEY, WatchKeeper, stop_watch
from mailport.connectors.gmail.transport import GmailTransport
from mailport.connectors.registry import ConnectorContext, ForceRefresh, PushContext, TokenSource, register
from mailport.errors import ConnectionLostError, UnsupportedFeatureError
from mailport.mailboxes.models import Mailbox
from mailport.metrics import SYNC_RECOVERIES
from mailport.net.guard import HostGuard
from mailport.oauth.providers import MailApi
from mailport.push.subscriptions import MAILBOX_SCOPE
from mailport.sending.transport import register_transport

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LabelScope(ScopeState):
    """An opened label: ``epoch`` is its id; ``name`` as Gmail spells it."""

    name: str = ""


class GmailConnector(AccessDelegation, PollingConnector):
    """One mailbox over the Gmail API; mailbox access is :mod:`.access` (:class:`AccessDelegation`)."""

    key = KEY
    access: ClassVar[AccessModule] = gmail_access
    capabilities = frozenset(Feature)  # everything a connector can declare

    @classmethod
    def build(cls, mailbox: Mailbox, context: ConnectorContext) -> GmailConnector:
        """The registry's factory: the mailbox's connector from the service's context."""
        return cls(
            mailbox,
            api=context.api,
            token_source=context.token_source,
            force_refresh=context.force_refresh,
            guard=context.guard,
            push=context.push,
            poll_seconds=context.poll_seconds,
            concurrency=context.api_concurrency,
            max_message_bytes=context.max_message_bytes,
        )

    def __init__(
        self,
        mailbox: Mailbox,
        *,
        api: MailApi | None,
        token_source: TokenSource | None,
        force_refresh: ForceRefresh | None = None,
        guard: HostGuard | None = None,
        push: PushContext | None = None,
        poll_seconds: float = 300.0,
        concurrency: int = 4,
        max_message_bytes: int = 25 * 1024 * 1024,
        clock: Clock = utc_now,
        watch_renew: timedelta | None = None,
        http: ApiHttp | None = None,
    ) -> None:
        """``http``: a ready client (tests inject one with instant sleeps); otherwise one is
        built at every connect on the mailbox's API endpoint, guard and tokens."""
        self.mailbox = mailbox
        self._api = api
        self._token_source = token_source
        self._force_refresh = force_refresh
        self._guard = guard
        self._push = push
        self.poll_seconds = poll_seconds
        self._concurrency = concurrency
        self._max = max_message_bytes
        self._clock = clock
        self._watch_renew = watch_renew
        self._given_http = http
        self._http: ApiHttp | None = None
        self.client: GmailClient | None = None
        self.keeper: WatchKeeper | None = None
        self.email: str | None = None
        self._last_activity: datetime | None = None
        self.recoveries = 0  # expired historyIds recovered by this instance
        self._last_recovery: datetime | None = None
        self._opened: str | None = None  # the id of the label last opened

    # ------------------------------------------------------------------ connection

    @property
    def is_connected(self) -> bool:
        return self.client is not None

    def supports(self, feature: Feature) -> bool:
        """Push only while a ``users.watch`` is live; everything else as declared."""
        if feature is Feature.PUSH:
            return self.keeper is not None and self.keeper.live()
        return feature in self.capabilities

    def _new_http(self) -> ApiHttp:
        if self._given_http is not None:
            return self._given_http
        if self._api is None:
            raise UnsupportedFeatureError(
                f"mailbox {self.mailbox.id} has no Gmail API endpoint (provider "
                f"{self.mailbox.provider_id or 'none'})",
                hint="Connect the mailbox with Google OAuth (provider google) to use the gmail_api "
                "connector, or switch it to the imap connector.",
            )
        return ApiHttp(
            self._api.base_url,
            guard=self._guard or HostGuard(),
            token_source=self._token_source,
            force_refresh=self._force_refresh,
            limiter=mailbox_limiter(self.mailbox.id, self._concurrency),
            connector=KEY,
            clock=self._clock,
        )

    async def connect(self) -> None:
        """Check the token with the profile (the account and its newest historyId), then make
        sure the mailbox is watched when a topic is configured."""
        await self.disconnect()
        http = self._new_http()
        client = GmailClient(http)
        try:
            profile = await client.profile()
        except BaseException:
            if http is not self._given_http:
                await http.aclose()
            raise
        self._http, self.client, self.email = http, client, profile.email
        self.keeper = WatchKeeper(
            client,
            mailbox_id=self.mailbox.id,
            tenant_id=self.mailbox.tenant_id,
            push=self._push,
            clock=self._clock,
            fence=self.lease_fence,
            **({"renew_every": self._watch_renew} if self._watch_renew is not None else {}),
        )
        await self.keeper.ensure(force=True)
        self._touch()

    async def disconnect(self) -> None:
        """Close the HTTP client; the watch stays (other folders' watchers and restarts share it)."""
        http, self._http, self.client = self._http, None, None
        if http is not None and http is not self._given_http:
            await http.aclose()

    async def unsubscribe(self) -> None:
        """Stop the mailbox's ``users.watch`` and forget it: for a mailbox being deleted. Only the
        mailbox holding the watch row stops it; unconnected, a client of its own is used
        (:meth:`connect` would renew the watch first)."""
        if self.client is not None:
            await stop_watch(self.client, self._push, self.mailbox.id)
            return
        push = self._push
        if push is None or await push.subscriptions.get(self.mailbox.id, MAILBOX_SCOPE) is None:
            return  # nothing to stop: no client needed
        http = self._new_http()
        try:
            await stop_watch(GmailClient(http), self._push, self.mailbox.id)
        finally:
            if http is not self._given_http:
                await http.aclose()

    def _require(self) -> GmailClient:
        if self.client is None:
            raise ConnectionLostError(f"mailbox {self.mailbox.id}: the Gmail API client is not connected")
        return self.client

    def _touch(self) -> None:
        self._last_activity = self._clock()

    @property
    def requests_made(self) -> int:
        """HTTP requests made by this connector's current client (the bench's figure)."""
        return self._http.requests_made if self._http is not None else 0

    # ------------------------------------------------------------------ scopes and cursors

    async def open(self, scope: str) -> LabelScope:
        label = sync.resolve_label(await self._require().labels(), scope)
        self._opened = label.id  # what after-processing moves out of
        self._touch()
        return LabelScope(scope=scope, epoch=label.id, name=label.name)

    async def baseline(self, state: ScopeState, *, since: datetime) -> Cursor:
        """The profile's historyId now, and a re-list of what arrived in the label since ``since``
        (fetched by :meth:`fetch_since`, before history is followed)."""
        profile = await self._require().profile()
        start = sync.Position(int(profile.history_id), sync.unix(self._clock())).relisting(since)
        return Cursor(state.scope, state.epoch, start.encode())

    async def restart(self, state: ScopeState) -> Cursor:
        """Every message of the (new) label, then its history from now."""
        profile = await self._require().profile()
        start = sync.Position(int(profile.history_id), sync.unix(self._clock())).relisting(None)
        return Cursor(state.scope, state.epoch, start.encode())

    async def fetch_since(self, cursor: Cursor, *, chunk: int = 200) -> AsyncIterator[Batch]:
        client = self._require()
        label_id = cursor.epoch
        position = sync.Position.decode(cursor.position)
        recovered = False
        while True:
            try:
                if position.relist_after is not None:
                    async for batch in sync.relist(
                        client, cursor, position, label_id, chunk=min(chunk, 100), max_bytes=self._max
                    ):
                        cursor = batch.cursor
                        yield batch
                    position = sync.Position.decode(cursor.position)
                async for batch in sync.follow(
                    client,
                    cursor,
                    position,
                    label_id,
                    chunk=min(chunk, 100),
                    max_bytes=self._max,
                    now=self._clock(),
                ):
                    cursor = batch.cursor
                    yield batch
                self._touch()
                return
            except HistoryExpiredError:
                if recovered:
                    raise
                recovered = True
                position = await self._recover(cursor)
                cursor = Cursor(cursor.scope, cursor.epoch, position.encode())
                yield Batch([], cursor)  # saved first: a crash lists again, nothing is skipped

    async def _recover(self, cursor: Cursor) -> sync.Position:
        """The position after an expired historyId: a fresh one, and a re-list of the label from
        an hour before the last known point (the mailbox's creation when that is not known)."""
        old = sync.Position.decode(cursor.position)
        profile = await self._require().profile()
        after = old.known_point() or self.mailbox.created_at
        now = self._clock()
        self.recoveries += 1
        self._last_recovery = now
        SYNC_RECOVERIES.labels(connector=KEY, reason="history_expired").inc()
        log.warning(
            "mailbox %s: Gmail no longer has historyId %s for %s; re-listing the label since %s "
            "(duplicates are dropped, nothing is skipped)",
            self.mailbox.id,
            old.history_id,
            cursor.scope,
            (after - sync.RELIST_SLACK).isoformat(),
        )
        fresh = sync.Position(int(profile.history_id), sync.unix(now))
        return fresh.relisting(after - sync.RELIST_SLACK)

    def item_source(self, ref: MessageRef) -> dict[str, Any]:
        return {"gmail": {"id": ref.item, "thread_id": None, "label_ids": [ref.epoch], "history_id": None}}

    def epoch_source(self, scope: str, old: str, new: str) -> dict[str, Any]:
        return {"gmail": {"label": scope, "old_label_id": old, "new_label_id": new}}

    # ------------------------------------------------------------------ mailbox access (:mod:`.access`)
    # The methods are AccessDelegation's; the access functions read the size limit here.

    @property
    def max_message_bytes(self) -> int:
        return self._max

    async def header_blocks(
        self, folder: str, *, since: datetime, fields: Sequence[str], chunk: int = 500
    ) -> AsyncIterator[list[HeaderBlock]]:
        """Contact harvesting: see :mod:`.headers`."""
        blocks = gmail_headers.header_blocks(self._require(), folder, since=since, fields=fields, chunk=chunk)
        async for found in blocks:
            self._touch()
            yield found

    def all_mail(self) -> str:
        """Contact harvesting reads all mail in one listing, not each label: see :mod:`.headers`."""
        return gmail_headers.ALL_MAIL

    async def mark_read(self, items: Sequence[str]) -> None:
        """After-processing: the watched label's messages lose UNREAD."""
        await self._require().batch_modify(list(items), remove=["UNREAD"])

    async def move(self, items: Sequence[str], folder: str) -> None:
        """After-processing: into ``folder`` (a label), out of the watched one."""
        await gmail_access.move_items(self, items, folder, source=self._opened)

    async def delete(self, items: Sequence[str]) -> None:
        """After-processing: to the trash."""
        for item in items:
            await self._require().trash(item)

    # ------------------------------------------------------------------ changes made on the server

    async def changes_since(self, state: ScopeState, token: str | None, *, until: Cursor) -> ChangeSet:
        """Label changes and deletions of the label's messages since ``token`` (a historyId),
        up to the ingestion cursor's historyId (later ones are read next time)."""
        client = self._require()
        limit = sync.Position.decode(until.position).history_id
        if token is None:
            return ChangeSet([], str(limit))
        try:
            changes, reached = await _label_changes(client, token, state.epoch, limit=limit)
        except HistoryExpiredError:
            log.warning(
                "mailbox %s: Gmail no longer has historyId %s; changes to %s made meanwhile are not "
                "reported (new mail is not affected)",
                self.mailbox.id,
                token,
                state.scope,
            )
            SYNC_RECOVERIES.labels(connector=KEY, reason="changes_expired").inc()
            return ChangeSet([], str(limit))
        self._touch()
        return ChangeSet(changes, reached)

    # ------------------------------------------------------------------ watching

    async def keepalive(self) -> None:
        """Before every TICK: renew the watch when due."""
        if self.keeper is not None:
            await self.keeper.ensure()

    async def watch(self, *, interval: float) -> AsyncIterator[Change]:
        """A TICK on every wake-up, else every ``poll_seconds`` while push is live (the fallback
        poll), every ``interval`` (the mailbox's check interval) while it is not."""
        loop = asyncio.get_running_loop()
        woken = self._woken()
        while True:
            wait = self.poll_seconds if self.supports(Feature.PUSH) else interval
            try:
                await asyncio.wait_for(woken.wait(), wait)
            except TimeoutError:
                pass
            woken.clear()
            await self.keepalive()
            yield Change(ChangeKind.TICK, loop.time())

    async def ping(self) -> bool:
        """A profile round trip (the command pool's check after a pause)."""
        if self.client is None:
            return False
        try:
            await asyncio.wait_for(self.client.profile(), 10)
        except Exception:
            return False
        return True

    async def health(self) -> ConnectorHealth:
        details: dict[str, str] = {}
        if self.keeper is not None and self.keeper.status.topic:
            details["watch_topic"] = self.keeper.status.topic
            if self.keeper.status.expires_at is not None:
                details["watch_expires_at"] = self.keeper.status.expires_at.isoformat()
            if self.keeper.status.error:
                details["watch_error"] = self.keeper.status.error
        if self.recoveries:
            details["history_recoveries"] = str(self.recoveries)
        if self._last_recovery is not None:
            details["last_history_recovery_at"] = self._last_recovery.isoformat()
        return ConnectorHealth(
            connected=self.is_connected,
            push=self.supports(Feature.PUSH),
            last_activity=self._last_activity,
            details=details,
        )


async def _label_changes(
    client: GmailClient, token: str, label_id: str, *, limit: int
) -> tuple[list[MessageChange], str]:
    """The label's message changes in history after ``token`` up to ``limit`` (a historyId),
    one per message (its last), and the historyId reached."""
    last: dict[str, MessageChange] = {}
    page_token: str | None = None
    reached = int(token)
    while True:
        page = await client.history(
            token, history_types=sync.CHANGE_TYPES, page_token=page_token, max_results=sync.HISTORY_PAGE
        )
        for record in page.records:
            record_id = int(record.id or 0)
            if record_id > limit:  # not ingested yet: message.received comes first
                return list(last.values()), str(max(reached, min(limit, record_id - 1)))
            reached = max(reached, record_id)
            for change in _record_changes(record, label_id):
                last[change.item] = change
        page_token = page.next_page_token
        if not page_token:
            end = min(limit, int(page.history_id or reached))
            return list(last.values()), str(max(reached, end))


def _record_changes(record: HistoryRecord, label_id: str) -> list[MessageChange]:
    """A record's changes to messages of ``label_id``: deleted, moved out (the label removed:
    gone from this folder, as a move is in IMAP), or labels changed (flags and labels)."""
    version = str(record.id)
    out: list[MessageChange] = []
    for message in record.messages_deleted:
        if message.label_ids and label_id not in message.label_ids:
            continue
        out.append(MessageChange(message.id, None, version, source=_change_source(message)))
    for removed, changes in ((False, record.labels_added), (True, record.labels_removed)):
        for change in changes:
            message = change.message
            if label_id in message.label_ids:
                flags = sync.neutral_flags(message.label_ids)
                out.append(
                    MessageChange(
                        message.id, flags, version, labels=message.label_ids, source=_change_source(message)
                    )
                )
            elif removed and label_id in change.label_ids:
                out.append(MessageChange(message.id, None, version, source=_change_source(message)))
    return out


def _change_source(message: HistoryMessage) -> dict[str, Any]:
    return {
        "gmail": {
            "id": message.id,
            "thread_id": message.thread_id,
            "label_ids": list(message.label_ids),
            "history_id": None,
        }
    }


register(GmailConnector.key, GmailConnector.build, GmailConnector.capabilities)
register_transport(GmailConnector.key, GmailTransport.build)  # sending: messages.send
