"""Gmail notifications by Pub/Sub **pull**: no public endpoint needed.

When ``MAILPORT_GMAIL_PUBSUB_SUBSCRIPTION`` is set, every process that runs background work
pulls that subscription (of the topic the mailboxes' ``users.watch`` publishes to), turns each
notification's ``emailAddress`` into wake-ups for the ``gmail_api`` mailboxes of that address —
in every tenant: a wake-up carries no data, the watcher fetches with the mailbox's own token —
and acknowledges the batch only once :meth:`PushService.wake` has recorded them. A crash before
the acknowledgement makes Pub/Sub deliver again (a duplicate wake-up is harmless); a failure
backs off exponentially (``retry.Backoff``) and never stops the loop.

Several processes may pull the same subscription: Pub/Sub hands each message to one puller at a
time, and whichever process records the wake-up, the one holding the watcher serves it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy import select

from mailport import retry
from mailport.connectors.api_http import ApiHttp
from mailport.connectors.gmail.pubsub import (
    PubSubClient,
    ReceivedMessage,
    ServiceAccountKey,
    ServiceAccountTokens,
)
from mailport.connectors.gmail.push import KEY
from mailport.errors import ConfigurationError
from mailport.metrics import PUSH_NOTIFICATIONS
from mailport.net.connect import http_client
from mailport.push.service import PushService
from mailport.services import Services
from mailport.store.database import Database
from mailport.store.tables import mailboxes
from mailport.tasks import cancel_and_wait, stop_if_cancelled
from mailport.validation import email_key

log = logging.getLogger(__name__)

PUBSUB_URL = "https://pubsub.googleapis.com"
MAX_MESSAGES = 100
BACKOFF = retry.RetryPolicy(first_delay=1.0, max_delay=60.0, jitter=0.5)


async def mailboxes_for(database: Database, accounts: Sequence[str]) -> list[str]:
    """The ``gmail_api`` mailboxes of these addresses, in every tenant."""
    keys = sorted({email_key(a) for a in accounts if a})
    if not keys:
        return []
    query = select(mailboxes.c.id).where(mailboxes.c.connector == KEY, mailboxes.c.email_key.in_(keys))
    async with database.connect() as conn:
        return [row.id for row in await conn.execute(query)]


class GmailPuller:
    """Pulls one subscription in a loop (see the module docstring)."""

    def __init__(
        self,
        client: PubSubClient,
        subscription: str,
        *,
        database: Database,
        push: PushService,
        idle_seconds: float = 1.0,
        backoff: retry.RetryPolicy = BACKOFF,
        closing: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        """``idle_seconds``: the pause after an empty pull (Pub/Sub answers at once when there
        is nothing; the fake too)."""
        self.client = client
        self.subscription = subscription
        self.database = database
        self.push = push
        self.idle_seconds = idle_seconds
        self._backoff = retry.Backoff(backoff)
        self._task: asyncio.Task[None] | None = None
        self._closing = list(closing)
        self.pulled = 0  # notifications acknowledged
        self.failures = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="gmail-pubsub-pull")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task, timeout=5)
            self._task = None
        for close in [self.client.http.aclose, *self._closing]:
            await close()

    async def pull_once(self) -> int:
        """One pull: wake-ups recorded for what came, then acknowledged; returns how many."""
        received = await self.client.pull(self.subscription, MAX_MESSAGES)
        if not received:
            return 0
        await self._wake(received)
        await self.client.acknowledge(self.subscription, [m.ack_id for m in received if m.ack_id])
        self.pulled += len(received)
        return len(received)

    async def _wake(self, received: Sequence[ReceivedMessage]) -> None:
        ids = await mailboxes_for(self.database, [m.email for m in received])
        await self.push.wake(ids)
        PUSH_NOTIFICATIONS.labels(connector=KEY, result="pulled").inc(len(received))

    async def _loop(self) -> None:
        while True:
            try:
                got = await self.pull_once()
                self._backoff.reset()
                if not got:
                    await asyncio.sleep(self.idle_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                stop_if_cancelled()
                self.failures += 1
                delay = self._backoff.next()
                log.warning("pulling %s failed (%s); again in %.1f s", self.subscription, exc, delay)
                await asyncio.sleep(delay)


def build_puller(services: Services) -> GmailPuller | None:
    """The puller the settings ask for (``MAILPORT_GMAIL_PUBSUB_SUBSCRIPTION``), or None. The
    Pub/Sub endpoint is Google's provider's ``apis.gmail_api.pubsub_url`` (tests point it at the
    fake), the token the service account's (``MAILPORT_GMAIL_PUBSUB_CREDENTIALS_FILE``)."""
    settings = services.settings
    subscription = settings.gmail_pubsub_subscription
    if not subscription:
        return None
    if settings.gmail_pubsub_credentials_file is None:
        raise ConfigurationError(
            "MAILPORT_GMAIL_PUBSUB_SUBSCRIPTION is set but MAILPORT_GMAIL_PUBSUB_CREDENTIALS_FILE is not",
            hint="Give the service-account key JSON that may pull the subscription "
            "(MAILPORT_GMAIL_PUBSUB_CREDENTIALS_FILE), or unset the subscription to use push.",
        )
    registry = services.oauth.oauth.registry
    api = registry.get("google").apis.get(KEY) if "google" in registry else None
    base = (api.pubsub_url if api is not None else None) or PUBSUB_URL
    key = ServiceAccountKey.from_file(settings.gmail_pubsub_credentials_file)
    token_client = http_client(services.guard, timeout=30.0)
    tokens = ServiceAccountTokens(key, client=token_client)
    http = ApiHttp(
        base,
        guard=services.guard,
        token_source=tokens.token,
        force_refresh=tokens.force_refresh,
        connector="pubsub",
        timeout=90.0,  # a pull may be held a while by the server
    )
    return GmailPuller(
        PubSubClient(http),
        subscription,
        database=services.database,
        push=services.push,
        closing=[token_client.aclose],
    )
