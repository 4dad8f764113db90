"""Reading and acting on a mailbox live from its server: the one service behind the API's
message and folder routes, the CLI's ``folders`` and ``messages`` commands, the web dashboard and
the library's mailbox handle.

Every call checks the tenant owns the mailbox (404 otherwise), that its connector declares the
feature (422 ``unsupported_feature``), borrows a command connection from the mailbox's
:class:`~mailport.mailboxes.pool.CommandPool` and bounds the whole call in time. A failure on the
server's or the network's side becomes 503 ``mailbox_unreachable`` (retry later); a refused
login stays what the connector said (422).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError

from mailport.connectors import registry
from mailport.connectors.base import Connector, Feature, MessageRef, RemoteMessage
from mailport.connectors.folders import Folder
from mailport.connectors.mail import FlagChange, ListQuery, MessagePage, MessageSummary, Moved, SearchQuery
from mailport.errors import (
    ConnectionLostError,
    InputError,
    MailboxUnreachableError,
    MailportError,
    MessageTooLargeError,
    ThreadNotFoundError,
    UnsupportedFeatureError,
)
from mailport.mailboxes.message_view import HtmlMode, MessageView, message_view
from mailport.mailboxes.models import Mailbox
from mailport.mailboxes.pool import CommandPool
from mailport.mailboxes.service import MailboxService
from mailport.messages import Attachment, attachment_content
from mailport.store.threads import ThreadRoots

log = logging.getLogger(__name__)

T = TypeVar("T")
_THREAD_KEY = re.compile(r"[0-9a-f]{32}")
RETRY_AFTER = 30  # seconds a client waits after mailbox_unreachable
CALL_TIMEOUT = 60.0  # a whole call (connect included), so a request never hangs on a silent server


@dataclass(eq=False, repr=False)
class MailAccess:
    """Folders and messages of a tenant's mailboxes, live from their servers."""

    mailboxes: MailboxService
    pool: CommandPool
    timeout: float = CALL_TIMEOUT
    roots: ThreadRoots | None = None  # thread key -> root; None: keys are not looked up

    async def mailbox(self, tenant_id: str, mailbox_id: str, feature: Feature) -> Mailbox:
        """The tenant's mailbox (404 for another tenant's) whose connector can do ``feature``."""
        mailbox = await self.mailboxes.get(tenant_id, mailbox_id)
        if feature not in registry.capabilities(mailbox.connector):
            raise UnsupportedFeatureError(
                f"the {mailbox.connector} connector cannot {feature.value}",
                hint=f"This mailbox's connector ({mailbox.connector}) does not offer {feature.value}; "
                "its messages arrive as events only.",
            )
        return mailbox

    @asynccontextmanager
    async def session(self, tenant_id: str, mailbox_id: str, feature: Feature) -> AsyncIterator[Connector]:
        """A connected connector of the tenant's mailbox, borrowed for one call."""
        mailbox = await self.mailbox(tenant_id, mailbox_id, feature)
        try:
            async with asyncio.timeout(self.timeout), self.pool.borrow(mailbox) as connector:
                yield connector
        except MailportError as exc:
            if exc.http_status < 500 or exc.http_status == 503:  # refused login, busy, too many
                raise
            raise _unreachable(mailbox_id, exc.code) from exc
        except (TimeoutError, OSError) as exc:
            raise _unreachable(mailbox_id, type(exc).__name__) from exc

    async def read(
        self, tenant_id: str, mailbox_id: str, feature: Feature, call: Callable[[Connector], Awaitable[T]]
    ) -> T:
        """``call`` on a borrowed connector, once more on a fresh one when the connection was
        lost: a pooled connection can die between two requests without a word (Dovecot says BYE
        only at the next command when another client deleted the selected folder). Only for
        reads: a write is never sent twice."""
        try:
            async with self.session(tenant_id, mailbox_id, feature) as connector:
                return await call(connector)
        except MailboxUnreachableError as exc:
            if not isinstance(exc.__cause__, ConnectionLostError):
                raise
            log.info("mailbox %s: a pooled connection was lost; reading again on a fresh one", mailbox_id)
        async with self.session(tenant_id, mailbox_id, feature) as connector:
            return await call(connector)

    # --- folders

    async def folders(self, tenant_id: str, mailbox_id: str) -> list[Folder]:
        return await self.read(tenant_id, mailbox_id, Feature.FOLDERS, lambda c: c.list_folders())

    async def create_folder(
        self, tenant_id: str, mailbox_id: str, name: str, *, parent: str | None = None
    ) -> Folder:
        async with self.session(tenant_id, mailbox_id, Feature.FOLDERS) as connector:
            return await connector.create_folder(name, parent=parent)

    async def rename_folder(
        self, tenant_id: str, mailbox_id: str, path: str, *, name: str, parent: str | None = None
    ) -> Folder:
        async with self.session(tenant_id, mailbox_id, Feature.FOLDERS) as connector:
            return await connector.rename_folder(path, name=name, parent=parent)

    async def delete_folder(self, tenant_id: str, mailbox_id: str, path: str) -> None:
        async with self.session(tenant_id, mailbox_id, Feature.FOLDERS) as connector:
            await connector.delete_folder(path)

    # --- messages

    async def list_messages(self, tenant_id: str, mailbox_id: str, query: ListQuery) -> MessagePage:
        page = await self.read(tenant_id, mailbox_id, Feature.FOLDERS, lambda c: c.list_messages(query))
        await self._remember(mailbox_id, page.items)
        return page

    async def search(self, tenant_id: str, mailbox_id: str, query: SearchQuery) -> MessagePage:
        page = await self.read(tenant_id, mailbox_id, Feature.SEARCH, lambda c: c.search_messages(query))
        await self._remember(mailbox_id, page.items)
        return page

    async def fetch(self, tenant_id: str, mailbox_id: str, ref: str) -> RemoteMessage:
        """One message's source by its public ``ref``."""
        location = MessageRef.decode(ref)
        return await self.read(tenant_id, mailbox_id, Feature.FOLDERS, lambda c: c.fetch_message(location))

    async def message(
        self,
        tenant_id: str,
        mailbox_id: str,
        ref: str,
        *,
        html: HtmlMode | str = HtmlMode.SANITIZED,
        remote_images: bool = False,
        attachment_url: Callable[[int], str] | None = None,
        links_in_new_tab: bool = False,
    ) -> MessageView:
        """One message parsed, its HTML sanitized unless ``html`` says otherwise
        (:func:`mailport.mailboxes.message_view.message_view`)."""
        remote = await self.fetch(tenant_id, mailbox_id, ref)
        return await asyncio.to_thread(
            message_view,
            remote,
            ref=ref,
            mailbox_id=mailbox_id,
            folder=MessageRef.decode(ref).scope,
            html=html,
            remote_images=remote_images,
            attachment_url=attachment_url,
            links_in_new_tab=links_in_new_tab,
        )

    async def raw(self, tenant_id: str, mailbox_id: str, ref: str) -> bytes:
        """The message's whole source (RFC 5322); 413 ``message_too_large`` above the size limit."""
        remote = await self.fetch(tenant_id, mailbox_id, ref)
        if remote.raw is None:
            raise MessageTooLargeError(
                f"the message has {remote.size} bytes, more than MAILPORT_MAX_MESSAGE_BYTES: "
                "its source is not served",
                hint="Its headers are in GET …/messages/{ref}; an operator can raise "
                "MAILPORT_MAX_MESSAGE_BYTES.",
            )
        return remote.raw

    async def attachment(self, tenant_id: str, mailbox_id: str, ref: str, n: int) -> tuple[Attachment, bytes]:
        """Attachment ``n`` (numbered as in the parsed message) and its decoded content."""
        raw = await self.raw(tenant_id, mailbox_id, ref)
        return await asyncio.to_thread(attachment_content, raw, n)

    async def thread(self, tenant_id: str, mailbox_id: str, root: str) -> list[MessageSummary]:
        """The conversation whose root Message-ID is ``root``, oldest first."""
        found = await self.read(tenant_id, mailbox_id, Feature.THREADS, lambda c: c.thread_messages(root))
        await self._remember(mailbox_id, found)
        return found

    async def thread_by_key(self, tenant_id: str, mailbox_id: str, key: str) -> list[MessageSummary]:
        """The conversation of a ``thread_key`` this mailbox handed out (a listing, a search, a
        thread or a ``message.received`` event); 404 ``thread_not_found`` for any other key."""
        if not _THREAD_KEY.fullmatch(key):
            raise InputError(
                f"not a thread key: {key[:40]!r}",
                field="key",
                hint="A thread key is the 32 hexadecimal characters of a message's `thread_key`.",
            )
        await self.mailbox(tenant_id, mailbox_id, Feature.THREADS)  # the tenant's, or 404
        root = await self.roots.root(mailbox_id, key) if self.roots is not None else None
        if root is None:
            raise ThreadNotFoundError(f"mailbox {mailbox_id} handed out no thread key {key}")
        return await self.thread(tenant_id, mailbox_id, root)

    async def _remember(self, mailbox_id: str, items: Sequence[MessageSummary]) -> None:
        """Record the roots of the thread keys about to be handed out. A listing never fails for
        this bookkeeping (a busy SQLite may refuse the write): the key then answers
        ``thread_not_found`` until a later listing records it."""
        if self.roots is None:
            return
        try:
            await self.roots.remember(mailbox_id, [s.thread_root for s in items if s.thread_root])
        except SQLAlchemyError as exc:
            log.warning("mailbox %s: thread roots not recorded (%s)", mailbox_id, type(exc).__name__)

    async def update_flags(
        self, tenant_id: str, mailbox_id: str, refs: Sequence[str], change: FlagChange
    ) -> None:
        locations = [MessageRef.decode(ref) for ref in refs]
        async with self.session(tenant_id, mailbox_id, Feature.FLAGS) as connector:
            await connector.update_flags(locations, change)

    async def move(self, tenant_id: str, mailbox_id: str, refs: Sequence[str], folder: str) -> list[Moved]:
        locations = [MessageRef.decode(ref) for ref in refs]
        async with self.session(tenant_id, mailbox_id, Feature.MOVE) as connector:
            return await connector.move_messages(locations, folder)

    async def delete(
        self, tenant_id: str, mailbox_id: str, refs: Sequence[str], *, permanent: bool = False
    ) -> None:
        locations = [MessageRef.decode(ref) for ref in refs]
        mailbox = await self.mailbox(tenant_id, mailbox_id, Feature.DELETE)
        if Feature.FOLDERS not in registry.capabilities(mailbox.connector):
            # POP3: deleting is an after-processing action only (a session here would lock
            # the maildrop the watcher polls)
            raise UnsupportedFeatureError(
                f"the {mailbox.connector} connector deletes messages only as an after-processing action",
                hint="Set the mailbox's settings.after_processing to delete: each message is then "
                "deleted once its event was accepted.",
            )
        async with self.session(tenant_id, mailbox_id, Feature.DELETE) as connector:
            await connector.delete_messages(locations, permanent=permanent)

    async def import_message(
        self,
        tenant_id: str,
        mailbox_id: str,
        folder: str,
        raw: bytes,
        *,
        flags: Sequence[str] = (),
        received_at: datetime | None = None,
    ) -> MessageRef | None:
        async with self.session(tenant_id, mailbox_id, Feature.FOLDERS) as connector:
            return await connector.import_message(folder, raw, flags=flags, received_at=received_at)


def _unreachable(mailbox_id: str, code: str) -> MailboxUnreachableError:
    log.info("mailbox %s: a live request failed (%s)", mailbox_id, code)
    return MailboxUnreachableError(
        f"could not reach the server of mailbox {mailbox_id}: {code}", retry_after=RETRY_AFTER
    )
