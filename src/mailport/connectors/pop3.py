"""The POP3 connector: :class:`~mailport.connectors.base.Connector` on :mod:`mailport.pop3`.

What POP3 can do is little, and declared: new mail of one maildrop (the scope ``INBOX``) and
deleting it — nothing of folders, flags, moves, search, threads, drafts, changes or push. The
routes needing those answer ``unsupported_feature`` (:class:`~mailport.connectors.base.BaseConnector`).

**One session per poll.** A POP3 session sees a snapshot of the maildrop and locks it, and
DELEs only take effect at QUIT. So :meth:`watch` QUITs the session, waits the check interval
(or a :meth:`wake`), opens a new one (login, UIDL, LIST) and yields a TICK; the watcher's
catch-up then reads that snapshot and its after-processing deletes in it.

**Cursor**: scope ``INBOX``, epoch ``uidl`` (POP3 has none: unique ids are for ever), position
the set of ingested unique ids the server still lists (:mod:`mailport.connectors.pop3_cursor`).
A message's ``item`` is its unique id.

**Fetching**: RETR, or TOP n 0 (the header block) for a message LIST says is over the size
limit (and for one that turns out over it while being read: it is skipped on the wire).

**Deleting** happens only through the pipeline's after-processing
(:meth:`~mailport.sync.watcher.Watcher.apply_actions`: after the event was accepted, and only
when the mailbox's action is ``delete``): :meth:`delete` sends the DELEs and QUIT at once, so an
action is marked done only once the server has applied it. A session cut before QUIT's answer
raises; the actions stay pending and are applied again in the next session (ids the server no
longer lists were removed already), while the cursor, which already holds those ids, keeps
their messages from being delivered twice.

**First sync** (``since``): mail that arrived after ``since`` is ingested, the rest of the
maildrop is taken as seen. POP3 has no arrival date, so the newest messages' headers are read
(TOP n 0, newest first: the topmost ``Received:`` date, else ``Date:``) until one is older —
one TOP for a maildrop without new mail, one per new message otherwise (each is then fetched
anyway). There is no cap: a cap would take the new mail beyond it as seen, and lose it.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mailport.clock import utc_now
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
from mailport.connectors.pop3_cursor import Remembered
from mailport.connectors.registry import ConnectorContext, ForceRefresh, TokenSource, register
from mailport.crypto import Secret
from mailport.errors import (
    AuthenticationError,
    CommandError,
    ConnectionLostError,
    UidlUnsupportedError,
    UnsupportedFeatureError,
)
from mailport.failures import is_temporary
from mailport.mailboxes.models import AuthMethod, Mailbox, Security, ServerSettings
from mailport.net.guard import HostGuard
from mailport.pop3 import Pop3Client
from mailport.sasl import OAuth2Auth, PasswordAuth

log = logging.getLogger(__name__)

SCOPE = "INBOX"
EPOCH = "uidl"
FETCH_TIMEOUT = 300.0  # one RETR of a message up to the size limit
QUIT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Listed:
    """One message of the session's snapshot."""

    number: int
    uid: str
    size: int


class Pop3Connector(PollingConnector):
    """One mailbox over POP3."""

    key = "pop3"
    capabilities = frozenset({Feature.DELETE})

    @classmethod
    def build(cls, mailbox: Mailbox, context: ConnectorContext) -> Pop3Connector:
        """The registry's factory: the mailbox's connector from the service's context."""
        pinned = mailbox.pop3.trusted_certificate if mailbox.pop3 is not None else None
        return cls(
            mailbox,
            token_source=context.token_source,
            force_refresh=context.force_refresh,
            ssl_context=context.ssl_context(pinned) if context.ssl_context is not None else None,
            max_message_bytes=context.max_message_bytes,
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
        connect_timeout: float = 15.0,
        command_timeout: float = 60.0,
        guard: HostGuard | None = None,
    ) -> None:
        self.mailbox = mailbox
        self._token_source = token_source
        self._force_refresh = force_refresh
        self._ssl_context = ssl_context
        self._max = max_message_bytes
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._guard = guard
        self._client: Pop3Client | None = None
        self._listing: list[Listed] = []
        self._last_token: Secret | None = None
        self._last_activity: datetime | None = None

    def __repr__(self) -> str:
        return f"Pop3Connector({self.mailbox.id!r})"

    # ------------------------------------------------------------------ sessions

    @property
    def _pop3(self) -> ServerSettings:
        return self.mailbox.require_pop3()

    @property
    def is_connected(self) -> bool:
        return self._client is not None and self._client.connected

    def _new_client(self) -> Pop3Client:
        server = self._pop3
        plain = server.security is Security.NONE
        return Pop3Client(
            server.host,
            server.port,
            security=server.security,
            ssl_context=None if plain else self._ssl_context,
            allow_plaintext=plain,
            allow_plaintext_auth=plain,  # the mailbox chose "none" explicitly
            connect_timeout=self._connect_timeout,
            command_timeout=self._command_timeout,
            max_message_bytes=self._max,
            guard=self._guard,
        )

    async def connect(self) -> None:
        """A new session: login, then the snapshot's unique ids and sizes."""
        await self.disconnect()
        client = self._new_client()
        try:
            await client.connect()
            client = await self._authenticate(client)
            self._listing = await self._snapshot(client)
        except BaseException:
            client.close()
            raise
        self._client = client
        self._touch()

    async def _authenticate(self, client: Pop3Client) -> Pop3Client:
        """The signed-in session: ``client``, or a new one after a refused OAuth token was
        refreshed (a POP3 server closes the session after a failed AUTH, or may)."""
        if self.mailbox.auth_method is not AuthMethod.OAUTH2:
            if self.mailbox.password is None:
                raise AuthenticationError(
                    f"mailbox {self.mailbox.id} has no password",
                    code="invalid_credentials",
                    hint="Set the mailbox's password (PATCH /v1/mailboxes/{id}).",
                )
            await client.authenticate(PasswordAuth(self.mailbox.pop3_username, self.mailbox.password))
            return client
        if self._token_source is None:
            raise AuthenticationError(
                f"mailbox {self.mailbox.id} uses OAuth but no token manager is configured",
                code="oauth_token_rejected",
            )
        try:
            await client.authenticate(OAuth2Auth(self.mailbox.pop3_username, self._token))
            return client
        except AuthenticationError as exc:
            if self._force_refresh is None or is_temporary(exc):
                raise
        # the server rejected the token: refresh once (unless someone already did), then retry
        fresh = await self._force_refresh(self._last_token)
        client.close()
        again = self._new_client()
        try:
            await again.connect()
            await again.authenticate(OAuth2Auth(self.mailbox.pop3_username, fresh))
        except BaseException:
            again.close()
            raise
        return again

    async def _token(self) -> Secret:
        assert self._token_source is not None
        self._last_token = await self._token_source()
        return self._last_token

    async def _snapshot(self, client: Pop3Client) -> list[Listed]:
        try:
            uids = await client.uidl()
        except CommandError as exc:
            raise UidlUnsupportedError(
                f"{client.where}: the server refused UIDL ({exc.server_said}); mailport cannot "
                "tell new POP3 messages from ones it delivered without it",
                server_said=exc.server_said,
            ) from exc
        sizes = dict(await client.list())
        return [Listed(n, uid, sizes.get(n, 0)) for n, uid in uids]

    async def disconnect(self) -> None:
        """QUIT (the server applies this session's DELEs), or drop a broken connection."""
        client, self._client = self._client, None
        self._listing = []
        if client is None:
            return
        if not client.connected:
            client.close()
            return
        try:
            await asyncio.wait_for(client.quit(), QUIT_TIMEOUT)
        except Exception as exc:  # the session is going anyway; nothing was deleted in it
            log.debug("mailbox %s: QUIT failed: %s", self.mailbox.id, exc)
            client.close()

    def _require(self) -> Pop3Client:
        if self._client is None or not self._client.connected:
            raise ConnectionLostError(f"{self._pop3.host}: no POP3 session")
        return self._client

    def _touch(self) -> None:
        self._last_activity = utc_now()

    # ------------------------------------------------------------------ reading

    async def open(self, scope: str) -> ScopeState:
        if scope.upper() != SCOPE and scope != "role:inbox":
            raise UnsupportedFeatureError(
                f"the pop3 connector has no folder {scope!r}",
                hint="A POP3 mailbox has one maildrop, watched as INBOX; leave settings.folder as INBOX.",
            )
        if self._client is None:
            await self.connect()
        return ScopeState(SCOPE, EPOCH)

    async def baseline(self, state: ScopeState, *, since: datetime) -> Cursor:
        """Every listed message is taken as seen but those that arrived at or after ``since``,
        found newest first (the maildrop lists oldest first)."""
        client = self._require()
        listed = self._listing
        fresh: set[str] = set()
        for item in reversed(listed):
            headers = await self._headers(client, item)
            if headers is None:  # no TOP (optional in RFC 1939): what is there now is old
                break
            when = arrival(headers)
            if when is not None and when < since:
                break
            fresh.add(item.uid)
        seen = Remembered().after([i.uid for i in listed], [i.uid for i in listed if i.uid not in fresh])
        return Cursor(state.scope, state.epoch, seen.encode())

    async def restart(self, state: ScopeState) -> Cursor:
        return Cursor(state.scope, state.epoch, Remembered().encode())

    async def fetch_since(self, cursor: Cursor, *, chunk: int = 200) -> AsyncIterator[Batch]:
        client = self._require()
        remembered = Remembered.decode(cursor.position)
        order = [item.uid for item in self._listing]
        seen = remembered.seen(order)
        new = [item for item in self._listing if item.uid not in seen]
        fetched: list[str] = []
        if not new:
            after = remembered.after(order, ())
            if after != remembered:  # ids the server no longer lists are forgotten
                yield Batch([], Cursor(cursor.scope, cursor.epoch, after.encode()))
            return
        for start in range(0, len(new), chunk):
            page = new[start : start + chunk]
            messages = [await self._fetch(client, item) for item in page]
            fetched += [item.uid for item in page]
            self._touch()
            position = remembered.after(order, fetched).encode()
            yield Batch(messages, Cursor(cursor.scope, cursor.epoch, position))

    async def _fetch(self, client: Pop3Client, item: Listed) -> RemoteMessage:
        source = {"pop3": {"uidl": item.uid}}
        if item.size <= self._max:
            got = await client.retr(item.number, timeout=FETCH_TIMEOUT)
            if got.data is not None:
                return RemoteMessage(item=item.uid, size=len(got.data), raw=got.data, source=source)
        headers = await self._headers(client, item)
        return RemoteMessage(
            item=item.uid,
            size=item.size,
            headers=headers or b"",  # a server without TOP: delivered without its header fields
            oversized=True,
            source=source,
        )

    async def _headers(self, client: Pop3Client, item: Listed) -> bytes | None:
        """The header block (TOP n 0); None when the server refuses TOP (it is optional)."""
        try:
            return (await client.top(item.number, 0, timeout=FETCH_TIMEOUT)).data or b""
        except CommandError:
            return None

    def item_source(self, ref: MessageRef) -> dict[str, Any]:
        return {"pop3": {"uidl": ref.item}}

    # ------------------------------------------------------------------ deleting

    async def delete(self, items: Sequence[str]) -> None:
        """DELE the listed ones, then QUIT so that the server applies them before the actions
        are marked done; ids no longer listed were deleted already (a QUIT whose answer was
        lost). The next poll opens a new session."""
        if not items:
            return
        client = self._require()
        numbers = {item.uid: item.number for item in self._listing}
        try:
            for uid in dict.fromkeys(items):
                if uid in numbers:
                    await client.dele(numbers[uid])
        except CommandError:
            await client.rset()  # a refused DELE: QUIT must not apply the others silently
            raise
        self._client, self._listing = None, []
        await client.quit()
        self._touch()

    # ------------------------------------------------------------------ watching

    async def watch(self, *, interval: float) -> AsyncIterator[Change]:
        """End the session (QUIT), wait ``interval`` or a :meth:`wake`, open a new session, TICK."""
        loop = asyncio.get_running_loop()
        woken = self._woken()
        while True:
            await self.disconnect()
            try:
                await asyncio.wait_for(woken.wait(), interval)
            except TimeoutError:
                pass
            woken.clear()
            await self.connect()
            yield Change(ChangeKind.TICK, loop.time())

    async def health(self) -> ConnectorHealth:
        return ConnectorHealth(connected=self.is_connected, push=False, last_activity=self._last_activity)


def arrival(headers: bytes) -> datetime | None:
    """When a message arrived, from its header block: the topmost ``Received:`` field's date
    (the last hop, this server's), else ``Date:``; None when neither parses."""
    received: str | None = None
    date: str | None = None
    current: list[str] = []

    def flush() -> None:
        nonlocal received, date
        if not current:
            return
        name, _, value = " ".join(current).partition(":")
        name = name.strip().lower()
        if name == "received" and received is None:
            received = value.rpartition(";")[2]
        elif name == "date" and date is None:
            date = value
        current.clear()

    for line in headers.decode("utf-8", "replace").split("\r\n"):
        if not line:
            break
        if line[0] in " \t":
            current.append(line.strip())
            continue
        flush()
        current.append(line)
    flush()
    for value in (received, date):
        if not value:
            continue
        try:
            when = email.utils.parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            continue
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return None


register(Pop3Connector.key, Pop3Connector.build, Pop3Connector.capabilities)
