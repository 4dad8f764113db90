"""A push-capable fake connector for the push path's tests (self-contained; no mail server).

* :class:`FakePushReceiver` fills the two push hooks the way Microsoft Graph shapes its calls:
  ``?validationToken=`` is echoed as ``text/plain``; a notification is
  ``{"value": [{"clientState": …, "account": …}, …]}`` (``account`` standing in for Gmail's
  ``emailAddress``, for channels shared by a tenant's mailboxes).
* :class:`FakePushConnector` is the scriptable fake with push on and no mail; it counts wakes
  and catch-ups.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from mailport.connectors.base import Batch, Cursor
from mailport.connectors.push import PushClaim, PushRequest, PushResponse
from mailport.crypto import Secret
from mailport.errors import PushInvalidError
from mailport.mailboxes.models import Mailbox
from tests.connectors.fake import ALL, FakeConnector, FakeMail

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


class FakePushConnector(FakeConnector):
    """The scriptable fake (:mod:`tests.connectors.fake`) with push on and no mail, counting
    the wakes and catch-ups the push path causes."""

    def __init__(self, mailbox: Mailbox) -> None:
        super().__init__(FakeMail(features=ALL))
        self.mailbox = mailbox
        self.woken = 0
        self.catch_ups = 0

    async def fetch_since(self, cursor: Cursor, *, chunk: int = 200) -> AsyncIterator[Batch]:
        self.catch_ups += 1
        async for batch in super().fetch_since(cursor, chunk=chunk):
            yield batch

    def wake(self) -> None:
        self.woken += 1
        super().wake()
