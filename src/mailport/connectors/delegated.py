"""Mailbox access delegated to a module of functions, declared once for the API connectors.

The Gmail API and Graph connectors keep their mailbox access (folders, listings, search, one
message, threads, flags, move, delete, import, folder changes) in an access module of plain
functions over the connector (:mod:`mailport.connectors.gmail.access`,
:mod:`mailport.connectors.graph.access`), as :mod:`mailport.connectors.imap_mail` is for IMAP.
Rather than each connector repeating thirteen one-line methods that call its module, a connector
inherits :class:`AccessDelegation` (before its base class) and names its module::

    class GmailConnector(AccessDelegation, PollingConnector):
        access: ClassVar[AccessModule] = gmail_access

mypy checks the module against :class:`AccessModule` (a module can implement a protocol; the
annotation is needed, as a bare module assignment would count as an instance variable). The
session parameter is ``Any`` there: each module types it as its own connector (or a protocol of
it), and a class variable cannot be generic in the class that holds it.

IMAP is left as it is: its search, threads and folder listing live in the connector and other
modules, so :mod:`~mailport.connectors.imap_mail` is not such a module.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Protocol

from mailport.connectors.base import MessageRef, RemoteMessage
from mailport.connectors.folders import Folder
from mailport.connectors.mail import FlagChange, ListQuery, MessagePage, MessageSummary, Moved, SearchQuery


class AccessModule(Protocol):
    """The functions an access module offers: the connector's mailbox access methods, each
    taking the connector first."""

    async def list_folders(self, session: Any) -> list[Folder]: ...

    async def folder_snapshot(self, session: Any) -> list[Folder]: ...

    async def list_messages(self, session: Any, query: ListQuery) -> MessagePage: ...

    async def search_messages(self, session: Any, query: SearchQuery) -> MessagePage: ...

    async def fetch_message(self, session: Any, ref: MessageRef) -> RemoteMessage: ...

    async def thread_messages(self, session: Any, root: str) -> list[MessageSummary]: ...

    async def update_flags(self, session: Any, refs: Sequence[MessageRef], change: FlagChange) -> None: ...

    async def move_messages(self, session: Any, refs: Sequence[MessageRef], folder: str) -> list[Moved]: ...

    async def delete_messages(
        self, session: Any, refs: Sequence[MessageRef], *, permanent: bool = False
    ) -> None: ...

    async def import_message(
        self,
        session: Any,
        folder: str,
        raw: bytes,
        *,
        flags: Sequence[str] = (),
        received_at: datetime | None = None,
    ) -> MessageRef | None: ...

    async def create_folder(self, session: Any, name: str, *, parent: str | None = None) -> Folder: ...

    async def rename_folder(
        self, session: Any, path: str, *, name: str, parent: str | None = None
    ) -> Folder: ...

    async def delete_folder(self, session: Any, path: str) -> None: ...


class AccessDelegation:
    """The mailbox access methods of :class:`~mailport.connectors.base.Connector`, each calling
    the function of the same name in the class's :attr:`access` module with the connector."""

    access: ClassVar[AccessModule]

    async def list_folders(self) -> list[Folder]:
        return await self.access.list_folders(self)

    async def folder_snapshot(self) -> list[Folder]:
        return await self.access.folder_snapshot(self)

    async def list_messages(self, query: ListQuery) -> MessagePage:
        return await self.access.list_messages(self, query)

    async def search_messages(self, query: SearchQuery) -> MessagePage:
        return await self.access.search_messages(self, query)

    async def fetch_message(self, ref: MessageRef) -> RemoteMessage:
        return await self.access.fetch_message(self, ref)

    async def thread_messages(self, root: str) -> list[MessageSummary]:
        return await self.access.thread_messages(self, root)

    async def update_flags(self, refs: Sequence[MessageRef], change: FlagChange) -> None:
        await self.access.update_flags(self, refs, change)

    async def move_messages(self, refs: Sequence[MessageRef], folder: str) -> list[Moved]:
        return await self.access.move_messages(self, refs, folder)

    async def delete_messages(self, refs: Sequence[MessageRef], *, permanent: bool = False) -> None:
        await self.access.delete_messages(self, refs, permanent=permanent)

    async def import_message(
        self, folder: str, raw: bytes, *, flags: Sequence[str] = (), received_at: datetime | None = None
    ) -> MessageRef | None:
        return await self.access.import_message(self, folder, raw, flags=flags, received_at=received_at)

    async def create_folder(self, name: str, *, parent: str | None = None) -> Folder:
        return await self.access.create_folder(self, name, parent=parent)

    async def rename_folder(self, path: str, *, name: str, parent: str | None = None) -> Folder:
        return await self.access.rename_folder(self, path, name=name, parent=parent)

    async def delete_folder(self, path: str) -> None:
        await self.access.delete_folder(self, path)
