"""``mailport.client``: the typed Python client of the mailport HTTP API, async and sync, on httpx.

::

    from mailport.client import AsyncClient, models

    async with AsyncClient("http://127.0.0.1:8025", api_key) as mp:
        async for mailbox in mp.mailboxes.iter():
            ...

Every ``/v1`` operation is a method (generated from the OpenAPI document by
``scripts/gen_client.py``); errors are the same :mod:`mailport.errors` classes the server raised;
:func:`verify_webhook` checks a delivery's signature. For code running beside the database
instead of over HTTP, see ``mailport.open()`` (``mailport.library``).
"""

from mailport.client import models
from mailport.client.clients import AsyncClient, Client
from mailport.client.secrets import Secret
from mailport.client.webhooks import verify_webhook
from mailport.errors import MailportError, WebhookSignatureError

__all__ = [
    "AsyncClient",
    "Client",
    "MailportError",
    "Secret",
    "WebhookSignatureError",
    "models",
    "verify_webhook",
]
