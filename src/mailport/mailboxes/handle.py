"""One tenant's mailbox as a Python object: ``box = mp.mailbox(tenant_id, mailbox_id)``.

The library's typed face of :class:`~mailport.mailboxes.access.MailAccess`: every method is one
call of that service (tenant check, feature check, a pooled connection, error mapping), so the
library, the CLI and the web dashboard behave exactly like the API. It adds only what a Python
caller wants and an HTTP client does not: refs given as strings, :class:`MessageRef` or the
listing items themselves, and :meth:`MailboxHandle.messages`, which follows the cursors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from mailport.connectors.base import MessageRef
from mailport.connectors.folders import Folder
from mailport.connectors.mail import (
    DEFAULT_LIMIT,
    FlagChange,
    ListQuery,
    MessagePage,
    MessageSummary,
    Moved,
    SearchQuery,
)
from mailport.errors import InputError, MessageTooLargeError
from mailport.mailboxes.access import MailAccess

RefLike = str | MessageRef | MessageSummary
"""A message as the handle takes it: the public ``ref_…`` string, a :class:`MessageRef`, or a
listing item."""


def ref_string(ref: RefLike) -> str:
    """The public ``ref_…`` string of any :data:`RefLike`."""
    if isinstance(ref, MessageSummary):
        return ref.ref.encode()
    if isinstance(ref, MessageRef):
        return ref.encode()
    return ref


def _refs(refs: RefLike | Iterable[RefLike]) -> list[str]:
    if isinstance(refs, str | MessageRef | MessageSummary):
        return [ref_string(refs)]
    found = [ref_string(ref) for ref in refs]
    if not found:
        raise InputError("no message given", field="refs", hint="Pass at least one message ref.")
    return found


@dataclass(frozen=True, slots=True)
class MailboxHandle:
    """Folders and messages of one mailbox of one tenant, live from its server."""

    access: MailAccess
    tenant_id: str
    mailbox_id: str

    # --- folders

    async def folders(self) -> list[Folder]:
        """Every folder with its role (``inbox``, ``sent`` …) and counts."""
        return await self.access.folders(self.tenant_id, self.mailbox_id)

    async def create_folder(self, name: str, *, parent: str | None = None) -> Folder:
        """A new folder ``name`` under ``parent`` (a path), or at the top of the namespace."""
        return await self.access.create_folder(self.tenant_id, self.mailbox_id, name, parent=parent)

    async def rename_folder(self, path: str, *, name: str, parent: str | None = None) -> Folder:
        return await self.access.rename_folder(
            self.tenant_id, self.mailbox_id, path, name=name, parent=parent
        )

    async def delete_folder(self, path: str) -> None:
        await self.access.delete_folder(self.tenant_id, self.mailbox_id, path)

    # --- listing and searching

    async def page(
        self,
        folder: str = "INBOX",
        *,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
        unseen: bool | None = None,
        since: datetime | None = None,
    ) -> MessagePage:
        """One page, newest first; pass its ``next_cursor`` back for the next."""
        query = ListQuery(folder=folder, limit=limit, cursor=cursor, unseen=unseen, since=since)
        return await self.access.list_messages(self.tenant_id, self.mailbox_id, query)

    async def messages(
        self,
        folder: str = "INBOX",
        *,
        unseen: bool | None = None,
        since: datetime | None = None,
        page_size: int = DEFAULT_LIMIT,
        limit: int | None = None,
    ) -> AsyncIterator[MessageSummary]:
        """Every message of ``folder`` (at most ``limit``), newest first, page after page.

        A page is one server call; mail that arrives meanwhile neither repeats nor hides an
        item (the cursors mark where a page ended, not an offset).
        """
        cursor: str | None = None
        given = 0
        while True:
            page = await self.page(folder, limit=page_size, cursor=cursor, unseen=unseen, since=since)
            for item in page.items:
                if limit is not None and given >= limit:
                    return
                yield item
                given += 1
            if page.next_cursor is None or (limit is not None and given >= limit):
                return
            cursor = page.next_cursor

    async def search(self, query: SearchQuery | None = None, /, **criteria: Any) -> MessagePage:
        """One page of the messages matching every criterion (``SearchQuery``'s fields:
        ``from_``, ``subject``, ``text``, ``since``, ``seen`` …, or a whole ``query``)."""
        built = replace(query, **criteria) if query is not None else SearchQuery(**criteria)
        return await self.access.search(self.tenant_id, self.mailbox_id, built)

    async def matches(
        self, query: SearchQuery | None = None, /, **criteria: Any
    ) -> AsyncIterator[MessageSummary]:
        """Every match of :meth:`search`, page after page."""
        built = replace(query, **criteria) if query is not None else SearchQuery(**criteria)
        while True:
            page = await self.access.search(self.tenant_id, self.mailbox_id, built)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            built = replace(built, cursor=page.next_cursor)

    # --- one message

    async def raw(self, ref: RefLike) -> bytes:
        """The message's whole source (RFC 5322 bytes)."""
        fetched = await self.access.fetch(self.tenant_id, self.mailbox_id, ref_string(ref))
        if fetched.raw is None:
            raise MessageTooLargeError(
                f"the message is {fetched.size} bytes, over this service's size limit",
                hint="Raise MAILPORT_MAX_MESSAGE_BYTES to read larger messages.",
            )
        return fetched.raw

    # --- actions

    async def flag(
        self,
        refs: RefLike | Iterable[RefLike],
        *,
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
        add_labels: Iterable[str] = (),
        remove_labels: Iterable[str] = (),
    ) -> None:
        """Set and clear flags (``seen``, ``flagged``, ``answered``, ``draft``, or keywords)."""
        change = FlagChange(
            frozenset(add), frozenset(remove), frozenset(add_labels), frozenset(remove_labels)
        )
        if change.empty:
            raise InputError("no flag to add or remove", field="add", hint="Give add= or remove=.")
        await self.access.update_flags(self.tenant_id, self.mailbox_id, _refs(refs), change)

    async def mark_seen(self, refs: RefLike | Iterable[RefLike]) -> None:
        await self.flag(refs, add=("seen",))

    async def mark_unseen(self, refs: RefLike | Iterable[RefLike]) -> None:
        await self.flag(refs, remove=("seen",))

    async def move(self, refs: RefLike | Iterable[RefLike], folder: str) -> list[Moved]:
        """Move to ``folder`` (a path); each :class:`Moved` tells the new ref where known."""
        return await self.access.move(self.tenant_id, self.mailbox_id, _refs(refs), folder)

    async def delete(self, refs: RefLike | Iterable[RefLike], *, permanent: bool = False) -> None:
        """To the folder with the ``trash`` role, or expunged for good with ``permanent``."""
        await self.access.delete(self.tenant_id, self.mailbox_id, _refs(refs), permanent=permanent)

    async def import_message(
        self,
        raw: bytes,
        *,
        folder: str = "INBOX",
        flags: Sequence[str] = (),
        received_at: datetime | None = None,
    ) -> MessageRef | None:
        """Store ``raw`` in ``folder``; its ref when the server tells it (UIDPLUS)."""
        return await self.access.import_message(
            self.tenant_id, self.mailbox_id, folder, raw, flags=flags, received_at=received_at
        )
