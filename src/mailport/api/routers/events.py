"""``/v1/events``: the pull API for applications that cannot receive webhooks, its explicit
acknowledgement and its named consumers. Thin.

A JWT caller (issue 19) reads one of its user's mailboxes at a time: ``mailbox_id`` is required
(a consumer without one reads, and acknowledges for, every mailbox of the tenant), another
user's mailbox is 404, and it sees and forgets only consumers of its user's mailboxes."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response

from mailport.api.deps import Caller, error_responses, get_services, require_tenant
from mailport.api.owners import reach_mailbox
from mailport.delivery.schemas import (
    EventAck,
    EventAckResult,
    EventPage,
    EventRead,
    PullConsumerPage,
    PullConsumerRead,
)
from mailport.delivery.service import MAX_EVENTS_LIMIT
from mailport.errors import InputError
from mailport.services import Services

router = APIRouter(prefix="/v1/events", tags=["events"], responses=error_responses(401, 403, 422))

CONSUMER_HELP = "The pull consumer reading (each name acknowledges its own events)"
SCOPE_HELP = "Only this mailbox's events (the consumer's scope)"


def _tenant(caller: Caller) -> str:
    assert caller.tenant_id is not None  # require_tenant guarantees it
    return caller.tenant_id


async def _scope(services: Services, caller: Caller, mailbox_id: str | None) -> str | None:
    """The mailbox scope of a request: for a JWT caller, one of its user's mailboxes."""
    if caller.owner is not None and mailbox_id is None:
        raise InputError(
            "mailbox_id: a user's token reads the events of one of its mailboxes at a time",
            field="mailbox_id",
            hint="Pass mailbox_id (GET /v1/mailboxes lists the user's), or use the tenant's API key.",
        )
    await reach_mailbox(services, caller, mailbox_id)
    return mailbox_id


@router.get("", summary="Events after a cursor, oldest first (the cursor acknowledges what came before)")
async def list_events(
    after: str | None = Query(
        None,
        max_length=20,
        description="`next_cursor` of the previous call; acknowledges every event up to it for the consumer",
    ),
    limit: int = Query(100, ge=1, le=MAX_EVENTS_LIMIT),
    mailbox_id: str | None = Query(None, max_length=64, description=SCOPE_HELP),
    consumer: str = Query("default", max_length=64, description=CONSUMER_HELP),
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> EventPage:
    scope = await _scope(services, caller, mailbox_id)
    items, next_cursor = await services.webhooks.events_after(
        _tenant(caller), after=after, limit=limit, mailbox_id=scope, consumer=consumer
    )
    return EventPage(
        items=[
            EventRead(
                id=e.id,
                cursor=str(e.seq),
                type=e.type,
                mailbox_id=e.mailbox_id,
                created_at=e.created_at,
                data=e.payload,
            )
            for e in items
        ],
        next_cursor=next_cursor,
    )


@router.post("/ack", summary="Acknowledge every event up to a cursor for a pull consumer")
async def acknowledge_events(
    body: EventAck, caller: Caller = Depends(require_tenant), services: Services = Depends(get_services)
) -> EventAckResult:
    scope = await _scope(services, caller, body.mailbox_id)
    consumer, accepted = await services.webhooks.acknowledge(
        _tenant(caller), through=body.through, consumer=body.consumer, mailbox_id=scope
    )
    return EventAckResult(consumer=PullConsumerRead.from_model(consumer), accepted=accepted)


@router.get(
    "/consumers",
    summary="The tenant's pull consumers and how far each acknowledged (a user's token: its mailboxes')",
)
async def list_consumers(
    caller: Caller = Depends(require_tenant), services: Services = Depends(get_services)
) -> PullConsumerPage:
    found = await services.webhooks.consumers(_tenant(caller))
    if caller.owner is not None:
        owned = await services.mailboxes.owned_ids(_tenant(caller), caller.owner)
        found = [c for c in found if c.mailbox_id in owned]
    return PullConsumerPage(items=[PullConsumerRead.from_model(c) for c in found])


@router.delete(
    "/consumers/{name}",
    status_code=204,
    summary="Forget a pull consumer that no longer reads",
    responses=error_responses(404),
)
async def delete_consumer(
    name: str,
    mailbox_id: str | None = Query(None, max_length=64, description="Its scope, when it read one mailbox"),
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> Response:
    scope = await _scope(services, caller, mailbox_id)
    await services.webhooks.remove_consumer(_tenant(caller), name, mailbox_id=scope)
    return Response(status_code=204)
