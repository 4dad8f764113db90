"""The IMAP connector: :class:`~mailport.connectors.base.Connector` on :mod:`mailport.imap`.

It only translates: connection options from the mailbox, credentials (password, or OAuth
tokens from the token manager, refreshed once when the server rejects one), UID-range
fetches with the size limit applied on the wire, and IDLE (or polling) as a stream of
:class:`~mailport.connectors.base.Change`. Reconnecting, cursors and backoff belong to the
watcher (:mod:`mailport.sync.watcher`).

The neutral cursor, for IMAP: ``scope`` is the folder, ``epoch`` is ``str(UIDVALIDITY)``,
``position`` is ``str(last UID ingested)`` and a message's ``item`` is ``str(UID)``.
HIGHESTMODSEQ is not kept in the cursor: ingestion fetches by UID and never used it.

IDLE is renewed every ``idle_renew_seconds`` (RFC 2177: servers may drop an IDLE after 30
minutes; 25 minutes leaves margin for clocks, NAT tables and slow servers while costing one
DONE/NOOP/IDLE round trip per mailbox every 25 minutes); the NOOP at each renewal is the
liveness check, next to TCP keepalive.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailport.clock import utc_now
from mailport.connectors import imap_changes, imap_headers, imap_mail, imap_search, imap_threads
from mailport.connectors.base import (
    BaseConnector,
    Batch,
    Change,
    ChangeKind,
    ChangeSet,
    ConnectorHealth,
    Cursor,
    Feature,
    HeaderBlock,
    MessageRef,
    RemoteMessage,
    ScopeState,
)
from mailport.connectors.folders import Folder, Role, display_name, role_of
from mailport.connectors.mail import FlagChange, ListQuery, MessagePage, MessageSummary, Moved, SearchQuery
from mailport.connectors.registry import ConnectorContext, ForceRefresh, TokenSource, register
from mailport.crypto import Secret
from mailport.diagnosis import Failure, diagnose
from mailport.errors import AuthenticationError, CommandError, MailportError
from mailport.failures import is_temporary
from mailport.imap import FETCH_ITEMS, HEADER_ITEMS, EventKind, ImapClient, SelectInfo, ServerEvent
from mailport.imap.arguments import UIDs
from mailport.imap.counting import CountMark, MessageCount
from mailport.mailboxes.models import AuthMethod, Mailbox, Security, ServerSettings
from mailport.net.guard import HostGuard
from mailport.sasl import OAuth2Auth, PasswordAuth

log = logging.getLogger(__name__)


def _discard(task: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a FETCH nobody waits for any more (else asyncio logs it)."""
    if not task.cancelled():
        task.exception()


_NEW_MAIL = frozenset({EventKind.EXISTS, EventKind.RECENT})
FETCH_TIMEOUT = 300.0
STATUS_LIMIT = 500  # STATUS round trips one folder listing may cost (servers without LIST-STATUS)
BASELINE_PAGE = 2000  # INTERNALDATEs fetched per round trip when the first cursor is placed


@dataclass(frozen=True, slots=True)
class _Settled:
    """Where the last complete :meth:`ImapConnector.fetch_since` ended: no message after
    ``cursor`` existed that had not arrived after ``mark``."""

    cursor: Cursor
    mark: CountMark


@dataclass(frozen=True, slots=True)
class FolderState(ScopeState):
    """What SELECT tells us beyond the epoch: where new UIDs start, how many messages exist."""

    uidnext: int = 0
    exists: int = 0
    highestmodseq: int | None = None


class ImapConnector(BaseConnector):
    """One mailbox over IMAP."""

    key = "imap"
    capabilities = frozenset(
        {
            Feature.PUSH,
            Feature.FOLDERS,
            Feature.FLAGS,
            Feature.MOVE,
            Feature.DELETE,
            Feature.SEARCH,
            Feature.CHANGES,
            Feature.THREADS,
        }
    )

    @classmethod
    def build(cls, mailbox: Mailbox, context: ConnectorContext) -> ImapConnector:
        """The registry's factory: the mailbox's connector from the service's context."""
        pinned = mailbox.imap.trusted_certificate if mailbox.imap is not None else None
        return cls(
            mailbox,
            token_source=context.token_source,
            force_refresh=context.force_refresh,
            ssl_context=context.ssl_context(pinned) if context.ssl_context is not None else None,
            max_message_bytes=context.max_message_bytes,
            idle_renew_seconds=context.push_renew_seconds,
            guard=context.guard,
        )

    def __init__(
        self,
        mailbox: Mailbox,
        *,
        token_source: TokenSource | None = None,
        force_refresh: ForceRefresh | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_message_bytes: int = 25 * 1024 * 1024,
        idle_renew_seconds: float = 25 * 60,
        connect_timeout: float = 15.0,
        command_timeout: float = 60.0,
        guard: HostGuard | None = None,
        ignore_capabilities: Sequence[str] = (),
    ) -> None:
        """``guard``: the SSRF guard that vets the mailbox's host at every connect (the service's;
        the operator's, allowing any address, when None). ``ignore_capabilities``: act as if the
        server did not offer these (tests of the paths for older servers)."""
        self.mailbox = mailbox
        self._guard = guard
        self._ignore_capabilities = tuple(ignore_capabilities)
        self._token_source = token_source
        self._force_refresh = force_refresh
        self._ssl_context = ssl_context  # None: the system CAs (mailport.net.trust decides it)
        self._max = max_message_bytes
        self.idle_renew_seconds = idle_renew_seconds
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._client: ImapClient | None = None
        self._woken = False
        self._wake_event: asyncio.Event | None = None  # made by a polling watch only (memory)
        self._last_activity: datetime | None = None
        self._last_token: Secret | None = None
        self._folders: dict[str, str] = {}  # folder as configured -> its name on this server
        self.selection: SelectInfo | None = None  # what the last SELECT/EXAMINE said (imap_mail)
        self._settled: _Settled | None = None  # where the last fetch_since ended
        self._distrusted: MessageCount | None = None  # a connection whose counts proved wrong

    # ------------------------------------------------------------------ connection

    @property
    def is_connected(self) -> bool:
        return self._client is not None and self._client.connected

    def supports(self, feature: Feature) -> bool:
        """Push only while connected to a server that offers IDLE (RFC 2177)."""
        if feature is Feature.PUSH:
            return self._client is not None and self._client.has("IDLE")
        return feature in self.capabilities

    @property
    def _imap(self) -> ServerSettings:
        """The mailbox's IMAP server; a mailbox without one is refused when it connects."""
        return self.mailbox.require_imap()

    def _new_client(self) -> ImapClient:
        plain = self._imap.security is Security.NONE
        return ImapClient(
            self._imap.host,
            self._imap.port,
            security=self._imap.security,
            ssl_context=None if plain else self._ssl_context,
            allow_plaintext=plain,
            allow_plaintext_auth=plain,  # the mailbox chose "none" explicitly
            connect_timeout=self._connect_timeout,
            command_timeout=self._command_timeout,
            max_literal_size=self._max,
            guard=self._guard,
            ignore_capabilities=self._ignore_capabilities,
        )

    async def _token(self) -> Secret:
        assert self._token_source is not None
        self._last_token = await self._token_source()
        return self._last_token

    async def connect(self) -> None:
        await self.disconnect()
        client = self._new_client()
        try:
            await client.connect()
            if self.mailbox.auth_method is AuthMethod.OAUTH2:
                await self._authenticate_oauth(client)
            else:
                if self.mailbox.password is None:
                    raise AuthenticationError(
                        f"mailbox {self.mailbox.id} has no password",
                        code="invalid_credentials",
                        hint="Set the mailbox's password (PATCH /v1/mailboxes/{id}).",
                    )
                try:
                    await client.authenticate(PasswordAuth(self.mailbox.imap_username, self.mailbox.password))
                except AuthenticationError as exc:
                    raise self._verdict(exc) from exc
        except BaseException:
            client.close()
            raise
        self._client = client
        self._folders = {}
        self.selection = None
        self._settled = self._distrusted = None  # the counts of the connection before are gone
        self._touch()

    def _verdict(self, refused: AuthenticationError) -> MailportError:
        """The troubleshooting catalog's verdict on a refused password, so that the watcher's
        health says what the connection check says (``app_password_required`` for Gmail's words,
        ``invalid_credentials`` for a bare NO …)."""
        found = diagnose(
            Failure(
                step="authentication",
                protocol="imap",
                host=self._imap.host,
                port=self._imap.port,
                auth="password",
                error=refused,
            )
        )
        where = f"{self._imap.host}:{self._imap.port}"
        message = found.detail if found.detail.startswith(where) else f"{where}: {found.detail}"
        return found.error_class(message, hint=found.hint, server_said=refused.server_said)

    async def _authenticate_oauth(self, client: ImapClient) -> None:
        if self._token_source is None:
            raise AuthenticationError(
                f"mailbox {self.mailbox.id} uses OAuth but no token manager is configured",
                code="oauth_token_rejected",
            )
        try:
            await client.authenticate(OAuth2Auth(self.mailbox.imap_username, self._token))
            return
        except AuthenticationError as exc:
            # [UNAVAILABLE]: the server could not check the token; a refresh would not help.
            if self._force_refresh is None or is_temporary(exc):
                raise
        # the server rejected the token: refresh once (unless someone already did), then retry
        fresh = await self._force_refresh(self._last_token)
        client.close()
        await client.connect()
        await client.authenticate(OAuth2Auth(self.mailbox.imap_username, fresh))

    async def disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await asyncio.wait_for(client.logout(), 5)
            except (TimeoutError, Exception):  # best effort: the connection is going anyway
                client.close()

    def _require(self) -> ImapClient:
        if self._client is None or not self._client.connected:
            from mailport.errors import ConnectionLostError

            raise ConnectionLostError(f"{self._imap.host}: not connected")
        return self._client

    def _touch(self) -> None:
        self._last_activity = utc_now()

    # ------------------------------------------------------------------ reading

    async def open(self, scope: str) -> FolderState:
        client = self._require()
        if self.changes_reported():  # before SELECT (RFC 5161): VANISHED instead of EXPUNGE
            await imap_changes.enable_qresync(client)
        self.selection = None
        info = await client.select(scope)
        self.selection = info
        self._touch()
        return FolderState(
            scope=scope,
            epoch=str(info.uidvalidity or 0),
            uidnext=info.uidnext or 0,
            exists=info.exists,
            highestmodseq=info.highestmodseq,
        )

    async def baseline(self, state: ScopeState, *, since: datetime) -> Cursor:
        """Just before the first message whose INTERNALDATE is at or after ``since``: newest
        first, a page at a time, until a page holds older mail — a large backlog that arrived
        since then is ingested whole, while an old mailbox costs one page of INTERNALDATEs."""
        assert isinstance(state, FolderState)
        last_uid = max(state.uidnext - 1, 0)
        if state.exists:
            candidates = await self.list_uids(1)
            end = len(candidates)
            while end > 0:
                page = candidates[max(0, end - BASELINE_PAGE) : end]
                dated = await self.internaldates(page)
                after = [uid for uid, when in dated if when is None or when >= since]
                if after:
                    last_uid = min(after) - 1
                if len(after) < len(page):
                    break
                end -= len(page)
        return Cursor(state.scope, state.epoch, str(last_uid))

    async def restart(self, state: ScopeState) -> Cursor:
        return Cursor(state.scope, state.epoch, "0")

    async def list_uids(self, since_uid: int = 1) -> list[int]:
        """UIDs >= ``since_uid`` (``n:*`` also matches the last message when n is beyond it)."""
        uids = await self._require().search(f"UID {max(since_uid, 1)}:*", timeout=FETCH_TIMEOUT)
        return [uid for uid in uids if uid >= since_uid]

    async def fetch_since(self, cursor: Cursor, *, chunk: int = 200) -> AsyncIterator[Batch]:
        """The messages after the cursor, in pages of at most ``chunk``, in UID order.

        When this connection's count shows that between 1 and ``chunk`` messages arrived since
        the last call ended at this cursor (the usual wake-up from IDLE), one ``UID FETCH
        n:*`` fetches them (:meth:`_fetch_few`): no UID SEARCH, one round trip less. Otherwise
        (first call, another folder selected since, nothing counted, a backlog, counts that
        broke the rules) a UID SEARCH lists them and :meth:`_pages` fetches them page by page.
        Either way a page is only yielded, never stored here: the cursor moves when the caller
        commits it, so a page lost with the connection is fetched again."""
        client = self._require()
        position = int(cursor.position)
        settled, self._settled = self._settled, None
        count = client.message_count
        mark = count.mark() if count is not None and client.selected == cursor.scope else None
        arrived = None
        if settled is not None and mark is not None and count is not self._distrusted:
            if settled.cursor == cursor:
                arrived = mark.counter.arrived_since(settled.mark)
        last = position
        if arrived is not None and 0 < arrived <= chunk:
            assert settled is not None
            async for batch in self._fetch_few(cursor, settled.mark, chunk=chunk):
                last = int(batch.cursor.position)
                yield batch
        else:
            uids = await self.list_uids(position + 1)
            async for batch in self._pages(cursor, uids, chunk=chunk):
                yield batch
            last = uids[-1] if uids else position
        if mark is not None:  # every message after ``last`` arrived after ``mark``
            self._settled = _Settled(Cursor(cursor.scope, cursor.epoch, str(last)), mark)

    async def _fetch_few(self, cursor: Cursor, since: CountMark, *, chunk: int) -> AsyncIterator[Batch]:
        """``UID FETCH position+1:*``, keeping UIDs above the position (``n:*`` beyond the last
        UID answers the last message: RFC 3501 6.4.8, RFC 9051 6.4.9). A batch's cursor is its
        last UID; UIDs missing below it were expunged and never come back. More messages than
        the count promised (a server whose EXISTS cannot be trusted) are still all yielded, in
        pages, and this connection searches from then on."""
        position = int(cursor.position)
        fetched = await self._fetch(cursor.scope, int(cursor.epoch), f"{position + 1}:*", after=position)
        count = since.counter
        promised = count.arrived_since(since)
        if promised is None or len(fetched) > promised:
            log.info(
                "mailbox %s: %d new messages where the server counted %s; searching from now on",
                self.mailbox.id,
                len(fetched),
                promised,
            )
            self._distrusted = count
        for start in range(0, len(fetched), chunk):
            page = fetched[start : start + chunk]
            yield Batch(page, Cursor(cursor.scope, cursor.epoch, page[-1].item))

    async def _pages(self, cursor: Cursor, uids: list[int], *, chunk: int) -> AsyncIterator[Batch]:
        """The listed UIDs a page at a time; the next page is fetched while the caller stores
        this one (one FETCH ahead), so the server's work and the transfer overlap the parsing
        and the commit."""
        pages = [uids[start : start + chunk] for start in range(0, len(uids), chunk)]
        if not pages:
            return
        epoch = int(cursor.epoch)
        ahead = asyncio.ensure_future(self.fetch_uids(cursor.scope, epoch, pages[0]))
        try:
            for index, page in enumerate(pages):
                fetched = await ahead
                if index + 1 < len(pages):
                    ahead = asyncio.ensure_future(self.fetch_uids(cursor.scope, epoch, pages[index + 1]))
                # the position is the last UID asked for: one expunged meanwhile is not asked again
                yield Batch(fetched, Cursor(cursor.scope, cursor.epoch, str(page[-1])))
        finally:
            if not ahead.done():
                # Left early (the watcher stops, or its commit failed): the FETCH ahead is left
                # to finish rather than cancelled (a cancelled command desynchronizes the
                # session, which then closes); its pages were never stored.
                ahead.add_done_callback(_discard)

    def item_source(self, ref: MessageRef) -> dict[str, Any]:
        return {"imap": {"folder": ref.scope, "uidvalidity": int(ref.epoch), "uid": int(ref.item)}}

    def epoch_source(self, scope: str, old: str, new: str) -> dict[str, Any]:
        return {"imap": {"folder": scope, "old_uidvalidity": int(old), "new_uidvalidity": int(new)}}

    async def fetch_uids(self, folder: str, uidvalidity: int, uids: Sequence[int]) -> list[RemoteMessage]:
        if not uids:
            return []
        return await self._fetch(folder, uidvalidity, list(uids))

    async def _fetch(
        self, folder: str, uidvalidity: int, uids: UIDs, *, after: int = 0
    ) -> list[RemoteMessage]:
        """The messages ``uids`` names with UIDs above ``after``, in UID order; an oversized one
        without its body, with its header fetched instead."""
        client = self._require()
        fetched = await client.fetch(uids, FETCH_ITEMS, oversize="keep", timeout=FETCH_TIMEOUT)
        out: dict[int, RemoteMessage] = {}
        oversized: list[int] = []
        for m in fetched:
            assert m.uid is not None
            if m.uid <= after:
                continue
            size = m.size if m.size is not None else (m.oversize or len(m.raw or b""))
            big = m.oversize is not None or (m.size is not None and m.size > self._max)
            out[m.uid] = RemoteMessage(
                item=str(m.uid),
                size=size,
                flags=message_flags(m.flags or ()),
                received_at=m.internaldate,
                raw=None if big else (m.raw or b""),
                oversized=big,
                source={"imap": {"folder": folder, "uidvalidity": uidvalidity, "uid": m.uid}},
            )
            if big:
                oversized.append(m.uid)
        if oversized:
            for m in await client.fetch(oversized, HEADER_ITEMS, oversize="keep", timeout=FETCH_TIMEOUT):
                if m.uid in out:
                    out[m.uid].headers = m.headers or b""
        self._touch()
        return [out[uid] for uid in sorted(out)]

    async def internaldates(self, uids: Sequence[int]) -> list[tuple[int, datetime | None]]:
        """(UID, INTERNALDATE) without the bodies (the first sync's baseline)."""
        if not uids:
            return []
        fetched = await self._require().fetch(list(uids), ("UID", "INTERNALDATE"), timeout=FETCH_TIMEOUT)
        return sorted((m.uid, m.internaldate) for m in fetched if m.uid is not None)

    # ------------------------------------------------------------------ changing

    async def mark_read(self, items: Sequence[str]) -> None:
        if items:
            await self._require().store(_uids(items), ["\\Seen"])

    async def move(self, items: Sequence[str], folder: str) -> None:
        if items:
            target = await self.resolve_folder(folder, create=True)
            await self._require().move(_uids(items), target)

    async def resolve_folder(self, folder: str, *, create: bool = False) -> str:
        """The server's name for the configured ``folder``, found through NAMESPACE (RFC 2342).

        A name that exists as given is used as given; otherwise it is placed in the personal
        namespace (``Processed`` -> ``INBOX.Processed`` on a server whose personal prefix is
        ``INBOX.``), and, with ``create``, created there when missing. A refusal of the server
        is a :class:`~mailport.errors.CommandError` carrying its words (the session stays usable).
        """
        known = self._folders.get(folder)
        if known is not None:
            return known
        client = self._require()
        if folder.upper() == "INBOX" or await self._exists(client, folder):
            target = folder
        else:
            target = (await client.namespace()).qualify(folder)
            if target != folder and await self._exists(client, target):
                pass
            elif create:
                try:
                    await client.create(target)
                except CommandError as exc:
                    if exc.details.get("response_code") != "ALREADYEXISTS":  # RFC 5530: a race
                        raise
                log.info("mailbox %s: created folder %r", self.mailbox.id, target)
        self._folders[folder] = target
        return target

    async def list_folders(self) -> list[Folder]:
        """Every folder with its role and counts: one ``LIST … RETURN (… STATUS …)`` where the
        server offers LIST-EXTENDED and LIST-STATUS, else LIST, LSUB and a STATUS per folder
        (the first ``STATUS_LIMIT`` selectable ones; later ones have no counts)."""
        client = self._require()
        namespaces = await client.namespace()
        prefix = namespaces.personal[0].prefix if namespaces.personal else ""
        if client.has("LIST-EXTENDED") and client.has("LIST-STATUS"):
            entries, counts = await client.list_with_status()
            subscribed = {e.name for e in entries if any(f.lower() == "\\subscribed" for f in e.flags)}
        else:
            entries = await client.list_mailboxes()
            subscribed = await client.subscribed()
            counts = {}
            for entry in [e for e in entries if e.selectable][:STATUS_LIMIT]:
                counts[entry.name] = await client.status(entry.name, ["MESSAGES", "UNSEEN"])
        self._touch()
        folders = []
        for entry in entries:
            found = counts.get(entry.name, {})
            folders.append(
                Folder(
                    path=entry.name,
                    delimiter=entry.delimiter,
                    name=display_name(entry.name, entry.delimiter),
                    role=role_of(entry.name, delimiter=entry.delimiter, flags=entry.flags, prefix=prefix),
                    messages=found.get("MESSAGES"),
                    unseen=found.get("UNSEEN"),
                    subscribed=entry.name in subscribed,
                    selectable=entry.selectable,
                )
            )
        return sorted(folders, key=lambda f: (f.role is not Role.INBOX, f.path))

    @staticmethod
    async def _exists(client: ImapClient, name: str) -> bool:
        return any(entry.name == name for entry in await client.list_mailboxes("", name))

    async def delete(self, items: Sequence[str]) -> None:
        if items:
            client = self._require()
            uids = _uids(items)
            await client.store(uids, ["\\Deleted"])
            await client.expunge(uids)

    # ------------------------------------------------------------------ mailbox access
    # Any message of any folder (mailport.connectors.imap_mail does the work).

    async def list_messages(self, query: ListQuery) -> MessagePage:
        return await imap_mail.list_messages(self, query)

    async def fetch_message(self, ref: MessageRef) -> RemoteMessage:
        return await imap_mail.fetch_message(self, ref)

    def header_blocks(
        self, folder: str, *, since: datetime, fields: Sequence[str], chunk: int = 500
    ) -> AsyncIterator[list[HeaderBlock]]:
        """See :mod:`mailport.connectors.imap_headers`."""
        return imap_headers.header_blocks(self, folder, since=since, fields=fields, chunk=chunk)

    async def update_flags(self, refs: Sequence[MessageRef], change: FlagChange) -> None:
        await imap_mail.update_flags(self, refs, change)

    async def move_messages(self, refs: Sequence[MessageRef], folder: str) -> list[Moved]:
        return await imap_mail.move_messages(self, refs, folder)

    async def delete_messages(self, refs: Sequence[MessageRef], *, permanent: bool = False) -> None:
        await imap_mail.delete_messages(self, refs, permanent=permanent)

    async def import_message(
        self, folder: str, raw: bytes, *, flags: Sequence[str] = (), received_at: datetime | None = None
    ) -> MessageRef | None:
        return await imap_mail.import_message(self, folder, raw, flags=flags, received_at=received_at)

    async def create_folder(self, name: str, *, parent: str | None = None) -> Folder:
        return await imap_mail.create_folder(self, name, parent=parent)

    async def rename_folder(self, path: str, *, name: str, parent: str | None = None) -> Folder:
        return await imap_mail.rename_folder(self, path, name=name, parent=parent)

    async def delete_folder(self, path: str) -> None:
        await imap_mail.delete_folder(self, path)

    # ------------------------------------------------------------------ changes made on the server
    # (mailport.connectors.imap_changes: QRESYNC, CONDSTORE, or a bounded snapshot)

    async def changes_since(self, state: ScopeState, token: str | None, *, until: Cursor) -> ChangeSet:
        client = self._require()
        if client.selected != state.scope:  # a watcher of several folders selects each in turn
            self.selection = None
            self.selection = await client.select(state.scope)
        qresync = "QRESYNC" in client.enabled or (
            client.has("QRESYNC") and await imap_changes.enable_qresync(client)
        )
        found = await imap_changes.ImapChanges(client, state, qresync=qresync).run(token, until)
        self._touch()
        return found

    async def folder_snapshot(self) -> list[Folder]:
        folders = await imap_changes.folder_tree(self._require())
        self._touch()
        return folders

    # ------------------------------------------------------------------ watching

    def wake(self) -> None:
        self._woken = True
        if self._wake_event is not None:
            self._wake_event.set()
        client = self._client
        if client is not None:
            client._wake()  # ends a pending idle_wait at once (our own client's hook)

    async def watch(self, *, interval: float) -> AsyncIterator[Change]:
        loop = asyncio.get_running_loop()
        while True:
            client = self._require()
            if not client.has("IDLE"):
                if self._wake_event is None:
                    self._wake_event = asyncio.Event()
                wake_event = self._wake_event
                wake_event.clear()
                if not self._woken:
                    try:
                        await asyncio.wait_for(wake_event.wait(), interval)
                    except TimeoutError:
                        pass
                self._woken = False
                await client.noop()  # liveness, and lets the server report new mail
                self._touch()
                yield Change(ChangeKind.TICK, loop.time())
                continue
            await client.idle_start()
            renew_at = loop.time() + self.idle_renew_seconds
            change: Change | None = None
            while change is None:
                if self._woken:
                    change = Change(ChangeKind.TICK, loop.time())
                    break
                remaining = renew_at - loop.time()
                if remaining <= 0:
                    change = Change(ChangeKind.TICK, loop.time())
                    break
                events = await client.idle_wait(remaining)
                if any(e.kind in _NEW_MAIL for e in events):
                    change = Change(ChangeKind.NEW_MAIL, loop.time())
                elif self.changes_reported() and (kind := _changed(events)) is not None:
                    change = Change(kind, loop.time())
                elif any(e.kind is EventKind.BYE for e in events):
                    from mailport.errors import ConnectionLostError

                    raise ConnectionLostError(f"{self._imap.host}: the server said BYE")
            self._woken = False
            await client.idle_done()
            if change.kind is ChangeKind.TICK:
                await client.noop()  # liveness at every renewal
            self._touch()
            yield change

    async def ping(self) -> bool:
        """NOOP with a short deadline (the command pool's check after a pause); a failure closes
        the connection."""
        return self._client is not None and await self._client.is_alive(timeout=5.0)

    async def health(self) -> ConnectorHealth:
        return ConnectorHealth(
            connected=self.is_connected,
            push=self.supports(Feature.PUSH),
            last_activity=self._last_activity,
        )

    # ------------------------------------------------------------------ search and threads

    async def search_messages(self, query: SearchQuery) -> MessagePage:
        """See :mod:`mailport.connectors.imap_search`."""
        return await imap_search.search_messages(self, query)

    async def thread_messages(self, root: str) -> list[MessageSummary]:
        """See :mod:`mailport.connectors.imap_threads` (and :mod:`~mailport.connectors.imap_gmail`)."""
        return await imap_threads.thread_messages(self, root)


def _changed(events: Sequence[ServerEvent]) -> ChangeKind | None:
    """What IDLE's unsolicited responses say changed: an expunge, or flags (FETCH)."""
    kinds = {e.kind for e in events}
    if kinds & {EventKind.EXPUNGE, EventKind.VANISHED}:
        return ChangeKind.EXPUNGED
    if EventKind.FETCH in kinds:
        return ChangeKind.FLAGS
    return None


def message_flags(flags: Sequence[str]) -> tuple[str, ...]:
    """The message's flags as the server spells them, without ``\\Recent``: it belongs to the
    session that saw the message first (RFC 3501; gone in IMAP4rev2), so a payload carrying it
    would depend on which session fetched, and no Gmail API or Graph message has it."""
    return _without_recent(tuple(flags))


@functools.lru_cache(maxsize=1024)  # flag combinations repeat: one per message of a backlog
def _without_recent(flags: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(flag for flag in flags if flag.lower() != "\\recent")


def _uids(items: Sequence[str]) -> list[int]:
    return sorted({int(item) for item in items})


register(ImapConnector.key, ImapConnector.build, ImapConnector.capabilities)
