"""Webhook endpoints and the pull API for a tenant: what the routers and the library call.

* endpoints: create (the secret is generated unless given, and returned once), list, get,
  change, delete; the URL passes the SSRF guard when saved;
* deliveries: every delivery with every attempt, newest first; replay of dead letters;
* pull: ``events_after`` reads the tenant's events after a cursor for a named pull consumer;
  the cursor it is given acknowledges what came before, and :meth:`DeliveryService.acknowledge`
  acknowledges explicitly (:meth:`DeliveryService.consumed` for ``mailport.watch``). Whether an
  event is then accepted is decided by :mod:`mailport.events.acceptance`, for every consumer.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Generic, TypeVar

from mailport import events as event_log
from mailport.clock import Clock, utc_now
from mailport.crypto import Secret
from mailport.delivery import consumers as consumer_store
from mailport.delivery.consumers import DEFAULT_CONSUMER, WATCH_CONSUMER, PullConsumer, check_consumer_name
from mailport.delivery.metrics import DELIVERY_LATENCY
from mailport.delivery.models import Delivery, DeliveryStatus, EndpointStatus, WebhookEndpoint
from mailport.delivery.repository import WebhookRepository
from mailport.delivery.schemas import WebhookCreate, WebhookUpdate
from mailport.delivery.signing import check_secret, generate_secret
from mailport.delivery.urls import vet_webhook_url
from mailport.errors import InputError, InvalidCursorError, NotFoundError
from mailport.events import Event, EventLog, acceptance
from mailport.net.guard import HostGuard
from mailport.store.ids import plausible_id
from mailport.store.pagination import decode_cursor, encode_cursor

MAX_EVENTS_LIMIT = 1000
MAX_CURSOR = 2**63 - 1


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def parse_event_cursor(after: str | None, *, field: str = "after") -> int:
    """``after`` is the ``cursor`` of an event (its sequence number); empty means the beginning."""
    if after is None or after == "":
        return 0
    if not (after.isascii() and after.isdigit()) or len(after) > 19 or int(after) > MAX_CURSOR:
        raise InvalidCursorError(f"`{field}` is the cursor of an event (a non-negative integer)", field=field)
    return int(after)


@dataclass(eq=False, repr=False)
class DeliveryService:
    repository: WebhookRepository
    event_log: EventLog
    _: KW_ONLY
    guard: HostGuard
    clock: Clock = utc_now

    def __post_init__(self) -> None:
        self._endpoints = self.repository.endpoints
        self._outbox = self.repository.outbox
        self._history = self.repository.history

    # ------------------------------------------------------------------ endpoints

    async def create(self, tenant_id: str, body: WebhookCreate) -> tuple[WebhookEndpoint, Secret | None]:
        """The new endpoint, and its secret when it was generated (to show once)."""
        parsed, _ = await vet_webhook_url(body.url, self.guard)
        generated = body.secret is None
        secret = generate_secret() if body.secret is None else check_secret(body.secret.get_secret_value())
        endpoint = await self._endpoints.create(
            tenant_id,
            url=str(parsed),
            types=body.events,
            description=body.description,
            secret=secret,
            now=self.clock(),
            backfill=body.backfill,
            batch_size=body.batch_size,
        )
        if body.backfill:
            await self.event_log.notify(appended=False)  # wake the dispatcher: a full cycle
        return endpoint, (secret if generated else None)

    async def backfill(self, tenant_id: str, endpoint_id: str) -> int:
        """Hand the endpoint the events of its types that wait for no one but the pull API."""
        taken = await self._endpoints.backfill(tenant_id, endpoint_id, now=self.clock())
        if taken:
            await self.event_log.notify(appended=False)  # queued, not appended: a full cycle
        return taken

    async def get(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
        return await self._endpoints.get(tenant_id, endpoint_id)

    async def list(self, tenant_id: str, *, cursor: str | None, limit: int) -> Page[WebhookEndpoint]:
        items = await self._endpoints.page(tenant_id, after_id=decode_cursor(cursor), limit=limit + 1)
        more = len(items) > limit
        items = items[:limit]
        return Page(items, encode_cursor(items[-1].id) if more and items else None)

    async def update(self, tenant_id: str, endpoint_id: str, body: WebhookUpdate) -> WebhookEndpoint:
        given = body.model_fields_set
        values: dict[str, object] = {}
        if "url" in given and body.url is not None:
            parsed, _ = await vet_webhook_url(body.url, self.guard)
            values["url"] = str(parsed)
        if "events" in given:
            values["events"] = body.events
        if "description" in given:
            values["description"] = body.description
        if "batch_size" in given and body.batch_size is not None:
            values["batch_size"] = body.batch_size
        if "enabled" in given and body.enabled is not None:
            current = await self._endpoints.get(tenant_id, endpoint_id)
            if body.enabled and current.status is EndpointStatus.DISABLED:
                values.update(status=EndpointStatus.ACTIVE.value, disabled_reason=None, failing_since=None)
            elif not body.enabled and current.status is EndpointStatus.ACTIVE:
                values.update(
                    status=EndpointStatus.DISABLED.value, disabled_reason="disabled through the API"
                )
        secret = (
            check_secret(body.secret.get_secret_value())
            if "secret" in given and body.secret is not None
            else None
        )
        return await self._endpoints.update(
            tenant_id, endpoint_id, values=values, secret=secret, now=self.clock()
        )

    async def delete(self, tenant_id: str, endpoint_id: str) -> None:
        open_seqs = await self._endpoints.delete(tenant_id, endpoint_id)
        if open_seqs:  # the events it still owed may now be complete for the other endpoints
            async with self.event_log.transaction() as conn:
                await self._outbox.accept_completed(conn, open_seqs, now=self.clock())

    # ------------------------------------------------------------------ deliveries

    async def deliveries(
        self,
        tenant_id: str,
        endpoint_id: str,
        *,
        cursor: str | None,
        limit: int,
        status: DeliveryStatus | None = None,
    ) -> Page[Delivery]:
        before = decode_cursor(cursor)
        if before is not None and not (before.isascii() and before.isdigit()):
            raise InvalidCursorError("the cursor is not one this API returned", field="cursor")
        items = await self._history.page_deliveries(
            tenant_id,
            endpoint_id,
            before_seq=int(before) if before is not None else None,
            limit=limit + 1,
            status=status,
        )
        more = len(items) > limit
        items = items[:limit]
        return Page(items, encode_cursor(str(items[-1].event_seq)) if more and items else None)

    async def replay(self, tenant_id: str, endpoint_id: str, *, delivery_id: str | None) -> int:
        count = await self._history.replay(tenant_id, endpoint_id, delivery_id=delivery_id, now=self.clock())
        if count:
            await self.event_log.notify(appended=False)  # wake the dispatcher: a full cycle
        return count

    # ------------------------------------------------------------------ pull and in-process

    async def events_after(
        self,
        tenant_id: str,
        *,
        after: str | None,
        limit: int,
        mailbox_id: str | None = None,
        consumer: str = DEFAULT_CONSUMER,
    ) -> tuple[builtins.list[Event], str]:
        """The tenant's events after the cursor ``after`` (oldest first) and the next cursor.

        Asking for the events after a cursor acknowledges, for ``consumer`` (in the scope of
        ``mailbox_id``), every event up to it: a reader passes a cursor on once it is done with
        what came before. The page itself is not acknowledged (see :meth:`acknowledge`)."""
        after_seq = parse_event_cursor(after)
        check_consumer_name(consumer)
        _check_mailbox_id(mailbox_id)
        await self._acknowledge(tenant_id, consumer, mailbox_id, through=after_seq, clamp=True)
        items = await self.event_log.list_after(
            tenant_id, after_seq, min(limit, MAX_EVENTS_LIMIT), mailbox_id
        )
        next_cursor = str(items[-1].seq) if items else str(after_seq)
        return items, next_cursor

    async def acknowledge(
        self, tenant_id: str, *, through: str, consumer: str = DEFAULT_CONSUMER, mailbox_id: str | None = None
    ) -> tuple[PullConsumer, int]:
        """``consumer`` is done with every event of its scope up to the cursor ``through``.

        Returns the consumer and how many events became accepted."""
        seq = parse_event_cursor(through, field="through")
        check_consumer_name(consumer)
        _check_mailbox_id(mailbox_id)
        accepted = await self._acknowledge(tenant_id, consumer, mailbox_id, through=seq, clamp=False)
        async with self.event_log.database.connect() as conn:
            got = await consumer_store.get(conn, tenant_id, consumer, mailbox_id)
        assert got is not None
        return got, accepted

    async def consumed(self, tenant_id: str, items: Sequence[Event], *, mailbox_id: str | None = None) -> int:
        """An in-process reader (``mailport.watch(acknowledge=True)``, pull consumer ``watch``
        in the scope of ``mailbox_id``) is done with ``items``. Returns how many became accepted."""
        if not items:
            return 0
        through = max(e.seq for e in items)
        return await self._acknowledge(tenant_id, WATCH_CONSUMER, mailbox_id, through=through, clamp=True)

    async def _acknowledge(
        self, tenant_id: str, consumer: str, mailbox_id: str | None, *, through: int, clamp: bool
    ) -> int:
        now = self.clock()
        async with self.event_log.database.connect() as conn:
            newest = await event_log.last_seq(conn)
            current = await consumer_store.get(conn, tenant_id, consumer, mailbox_id)
        if through > newest:
            if not clamp:
                raise InvalidCursorError(
                    f"`through` {through} is past the newest event ({newest})",
                    field="through",
                    hint="Acknowledge a `cursor` or `next_cursor` that GET /v1/events returned.",
                )
            through = newest  # events not appended yet are never acknowledged in advance
        if not consumer_store.needs_write(current, through=through, now=now):
            return 0
        async with self.event_log.transaction() as conn:
            await consumer_store.advance(conn, tenant_id, consumer, mailbox_id, through=through, now=now)
            if current is not None and current.acked_seq >= through:
                return 0  # only its "last seen" time was refreshed
            settled = await acceptance.settle(
                conn, now=now, tenant_id=tenant_id, through=through, mailbox_id=mailbox_id, pull_owned=True
            )
        for event in settled:
            DELIVERY_LATENCY.observe(max((now - event.created_at).total_seconds(), 0.0))
        return len(settled)

    async def consumers(self, tenant_id: str) -> builtins.list[PullConsumer]:
        async with self.event_log.database.connect() as conn:
            return await consumer_store.list_for(conn, tenant_id)

    async def remove_consumer(self, tenant_id: str, name: str, *, mailbox_id: str | None = None) -> int:
        """Forget a pull consumer (a reader that is gone): the events only it still owed are
        accepted when the other consumers owing them have. Returns how many became accepted."""
        check_consumer_name(name)
        _check_mailbox_id(mailbox_id)
        async with self.event_log.transaction() as conn:
            if not await consumer_store.remove(conn, tenant_id, name, mailbox_id):
                raise NotFoundError(f"no pull consumer {name!r} in this scope", field="consumer")
            settled = await acceptance.settle(conn, now=self.clock(), tenant_id=tenant_id, pull_owned=True)
        return len(settled)


def _check_mailbox_id(mailbox_id: str | None) -> None:
    if mailbox_id is not None and not plausible_id(mailbox_id):
        raise InputError(
            f"{mailbox_id!r} is not a mailbox id",
            field="mailbox_id",
            hint="Give an id as returned by /v1/mailboxes (mbx_…), or leave mailbox_id out.",
        )
