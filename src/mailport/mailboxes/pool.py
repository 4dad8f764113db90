"""Command connections per mailbox, beside the watcher: what live API requests borrow.

A request never touches the watcher's IDLE connection; it borrows a connected
:class:`~mailport.connectors.base.Connector` from its mailbox's pool and gives it back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from mailport.connectors.base import Connector
from mailport.mailboxes.models import Mailbox

DEFAULT_SIZE = 2


@dataclass(eq=False, repr=False)
class CommandPool:
    """Connected connectors per mailbox, at most ``size`` at once."""

    connect: Callable[[Mailbox], Connector]
    size: int = DEFAULT_SIZE

    @asynccontextmanager
    async def borrow(self, mailbox: Mailbox) -> AsyncIterator[Connector]:
        """A connected connector of ``mailbox`` for the duration of the block."""
        connector = self.connect(mailbox)
        try:
            await connector.connect()
            yield connector
        finally:
            await connector.disconnect()

    async def aclose(self) -> None:
        """Close every pooled connection."""
