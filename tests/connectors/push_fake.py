"""A push-capable fake connector for the push path's tests (self-contained; no mail server).

* :class:`FakePushReceiver` fills the two push hooks the way Microsoft Graph shapes its calls:
  ``?validationToken=`` is echoed as ``text/plain``; a notification is
  ``{"value": [{"clientState": …, "account": …}, …]}`` (``account`` standing in for Gmail's
  ``emailAddress``, for channels shared by a tenant's mailboxes).
* :class:`FakePushConnector` connects to nothing and holds no mail; its ``watch()`` yields a
  TICK only when woken (or after the interval), and it counts wakes and catch-ups.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence

from mailport.connectors.base import Change, ChangeKind, ConnectorHealth, Cursor, FolderState, RemoteMessage
from mailport.connectors.push import PushClaim, PushRequest, PushResponse
from mailport.crypto import Secret
from mailport.errors import PushInvalidError
from mailport.mailboxes.models import Mailbox

KEY = "push_fake"


class FakePushReceiver:
    def handshake(self, request: PushRequest) -> PushResponse | None:
        token = request.query.get("validationToken")
        return None if token is None else PushResponse(200, token.encode(), "text/plain")

    def claims(self, request: PushRequest) -> list[PushClaim]:
        try:
            document = json.loads(request.body)
        except ValueError:
            raise PushInvalidError("the body is not JSON") from None
        items = document.get("value") if isinstance(document, dict) else None
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise PushInvalidError('expected {"value": [notification, …]}')
        return [
            PushClaim(
                Secret(item["clientState"]) if isinstance(item.get("clientState"), str) else None,
                account=item["account"] if isinstance(item.get("account"), str) else None,
                raw=item,
            )
            for item in items
        ]


class FakePushConnector:
    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        self.woken = 0
        self.catch_ups = 0
        self._wake = asyncio.Event()

    @property
    def is_connected(self) -> bool:
        return True

    @property
    def supports_push(self) -> bool:
        return True

    async def connect(self) -> None:
        return None

    async def disconnect(self) -> None:
        return None

    async def open_folder(self, folder: str) -> FolderState:
        return FolderState(folder, uidvalidity=1, uidnext=1)

    async def fetch_since(self, cursor: Cursor, *, chunk: int = 200) -> AsyncIterator[list[RemoteMessage]]:
        self.catch_ups += 1
        for batch in ():  # holds no mail
            yield batch

    async def fetch_uids(self, uids: Sequence[int]) -> list[RemoteMessage]:
        return []

    async def list_uids(self, since_uid: int = 1) -> list[int]:
        return []

    async def fetch_unread(self) -> list[RemoteMessage]:
        return []

    async def mark_read(self, uids: Sequence[int]) -> None:
        return None

    async def move(self, uids: Sequence[int], folder: str) -> None:
        return None

    async def delete(self, uids: Sequence[int]) -> None:
        return None

    async def watch(self, *, interval: float) -> AsyncIterator[Change]:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), interval)
            except TimeoutError:
                pass
            self._wake.clear()
            yield Change(ChangeKind.TICK, asyncio.get_running_loop().time())

    def wake(self) -> None:
        self.woken += 1
        self._wake.set()

    async def health(self) -> ConnectorHealth:
        return ConnectorHealth(connected=True, push=True)
