"""Webhook endpoints and the pull API for a tenant: what the routers and the library call.

* endpoints: create (the secret is generated unless given, and returned once), list, get,
  change, delete; the URL passes the SSRF guard when saved;
* deliveries: every delivery with every attempt, newest first; replay of dead letters;
* pull: ``events_after`` reads the tenant's events after a cursor and marks accepted those no
  active subscribed webhook endpoint is responsible for (the acceptance rule in
  :mod:`mailport.events`); :meth:`DeliveryService.consumed` does the same for an in-process
  consumer (``mailport.watch``).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from mailport import events as event_log
from mailport.crypto import Secret
from mailport.delivery.metrics import DELIVERY_LATENCY
from mailport.delivery.models import Delivery, DeliveryStatus, EndpointStatus, WebhookEndpoint
from mailport.delivery.repository import WebhookRepository
from mailport.delivery.schemas import WebhookCreate, WebhookUpdate
from mailport.delivery.signing import check_secret, generate_secret
from mailport.delivery.urls import vet_webhook_url
from mailport.errors import InputError, InvalidCursorError
from mailport.events import Event, EventLog
from mailport.net.guard import HostGuard
from mailport.store.ids import plausible_id
from mailport.store.pagination import decode_cursor, encode_cursor
from mailport.tenants.service import Clock, utc_now

MAX_EVENTS_LIMIT = 1000
MAX_CURSOR = 2**63 - 1


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def parse_event_cursor(after: str | None) -> int:
    """``after`` is the ``cursor`` of an event (its sequence number); empty means the beginning."""
    if after is None or after == "":
        return 0
    if not (after.isascii() and after.isdigit()) or len(after) > 19 or int(after) > MAX_CURSOR:
        raise InvalidCursorError("`after` is the cursor of an event (a non-negative integer)", field="after")
    return int(after)


class DeliveryService:
    def __init__(
        self,
        repository: WebhookRepository,
        event_log: EventLog,
        *,
        guard: HostGuard,
        clock: Clock = utc_now,
    ) -> None:
        self.repository = repository
        self.event_log = event_log
        self._guard = guard
        self._clock = clock

    # ------------------------------------------------------------------ endpoints

    async def create(self, tenant_id: str, body: WebhookCreate) -> tuple[WebhookEndpoint, Secret | None]:
        """The new endpoint, and its secret when it was generated (to show once)."""
        parsed, _ = await vet_webhook_url(body.url, self._guard)
        generated = body.secret is None
        secret = generate_secret() if body.secret is None else check_secret(body.secret.get_secret_value())
        endpoint = await self.repository.create(
            tenant_id,
            url=str(parsed),
            types=body.events,
            description=body.description,
            secret=secret,
            now=self._clock(),
        )
        return endpoint, (secret if generated else None)

    async def get(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
        return await self.repository.get(tenant_id, endpoint_id)

    async def list(self, tenant_id: str, *, cursor: str | None, limit: int) -> Page[WebhookEndpoint]:
        items = await self.repository.page(tenant_id, after_id=decode_cursor(cursor), limit=limit + 1)
        more = len(items) > limit
        items = items[:limit]
        return Page(items, encode_cursor(items[-1].id) if more and items else None)

    async def update(self, tenant_id: str, endpoint_id: str, body: WebhookUpdate) -> WebhookEndpoint:
        given = body.model_fields_set
        values: dict[str, object] = {}
        if "url" in given and body.url is not None:
            parsed, _ = await vet_webhook_url(body.url, self._guard)
            values["url"] = str(parsed)
        if "events" in given:
            values["events"] = body.events
        if "description" in given:
            values["description"] = body.description
        if "enabled" in given and body.enabled is not None:
            current = await self.repository.get(tenant_id, endpoint_id)
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
        return await self.repository.update(
            tenant_id, endpoint_id, values=values, secret=secret, now=self._clock()
        )

    async def delete(self, tenant_id: str, endpoint_id: str) -> None:
        open_seqs = await self.repository.delete(tenant_id, endpoint_id)
        if open_seqs:  # the events it still owed may now be complete for the other endpoints
            async with self.event_log.transaction() as conn:
                await self.repository.accept_completed(conn, open_seqs, now=self._clock())

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
        items = await self.repository.page_deliveries(
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
        count = await self.repository.replay(
            tenant_id, endpoint_id, delivery_id=delivery_id, now=self._clock()
        )
        if count:
            await self.event_log.notify()  # wake the dispatcher
        return count

    # ------------------------------------------------------------------ pull and in-process

    async def events_after(
        self, tenant_id: str, *, after: str | None, limit: int, mailbox_id: str | None = None
    ) -> tuple[builtins.list[Event], str]:
        """The tenant's events after the cursor ``after`` (oldest first) and the next cursor."""
        after_seq = parse_event_cursor(after)
        if mailbox_id is not None and not plausible_id(mailbox_id):
            raise InputError(
                f"{mailbox_id!r} is not a mailbox id",
                field="mailbox_id",
                hint="Give an id as returned by /v1/mailboxes (mbx_…), or leave mailbox_id out.",
            )
        items = await self.event_log.list_after(
            tenant_id, after_seq, min(limit, MAX_EVENTS_LIMIT), mailbox_id
        )
        await self.consumed(tenant_id, items)
        next_cursor = str(items[-1].seq) if items else str(after_seq)
        return items, next_cursor

    async def consumed(self, tenant_id: str, items: Sequence[Event]) -> int:
        """The application has read ``items`` (pull API or ``mailport.watch``): mark accepted those
        of a type no active webhook endpoint of the tenant subscribes to. Returns how many."""
        pending = [e for e in items if e.accepted_at is None]
        if not pending:
            return 0
        endpoints = await self.repository.active_for_tenant(tenant_id)
        mine = [e for e in pending if not any(ep.subscribes(e.type) for ep in endpoints)]
        if not mine:
            return 0
        now = self._clock()
        async with self.event_log.transaction() as conn:
            count = await event_log.mark_accepted(conn, [e.id for e in mine], now=now)
        for event in mine:
            DELIVERY_LATENCY.observe(max((now - event.created_at).total_seconds(), 0.0))
        return count
