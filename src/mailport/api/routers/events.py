"""``/v1/events``: the pull API for applications that cannot receive webhooks, its explicit
acknowledgement and its named consumers. Thin."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response

from mailport.api.deps import Caller, error_responses, get_services, require_tenant
from mailport.delivery.consumers import PullConsumer
from mailport.delivery.schemas import (
    EventAck,
    EventAckResult,
    EventPage,
    EventRead,
    PullConsumerPage,
    PullConsumerRead,
)
from mailport.delivery.service import MAX_EVENTS_LIMIT
from mailport.services import Services

router = APIRouter(prefix="/v1/events", tags=["events"], responses=error_responses(401, 403, 422))

CONSUMER_HELP = "The pull consumer reading (each name acknowledges its own events)"
SCOPE_HELP = "Only this mailbox's events (the consumer's scope)"


def _tenant(caller: Caller) -> str:
    assert caller.tenant_id is not None  # require_tenant guarantees it
    return caller.tenant_id


def _consumer(consumer: PullConsumer) -> PullConsumerRead:
    return PullConsumerRead(
        name=consumer.name,
        mailbox_id=consumer.mailbox_id,
        acked_cursor=str(consumer.acked_seq),
        created_at=consumer.created_at,
        updated_at=consumer.updated_at,
    )


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
    items, next_cursor = await services.webhooks.events_after(
        _tenant(caller), after=after, limit=limit, mailbox_id=mailbox_id, consumer=consumer
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
    consumer, accepted = await services.webhooks.acknowledge(
        _tenant(caller), through=body.through, consumer=body.consumer, mailbox_id=body.mailbox_id
    )
    return EventAckResult(consumer=_consumer(consumer), accepted=accepted)


@router.get("/consumers", summary="The tenant's pull consumers and how far each acknowledged")
async def list_consumers(
    caller: Caller = Depends(require_tenant), services: Services = Depends(get_services)
) -> PullConsumerPage:
    return PullConsumerPage(items=[_consumer(c) for c in await services.webhooks.consumers(_tenant(caller))])


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
    await services.webhooks.remove_consumer(_tenant(caller), name, mailbox_id=mailbox_id)
    return Response(status_code=204)
