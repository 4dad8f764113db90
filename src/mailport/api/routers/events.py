"""``GET /v1/events``: the pull API for applications that cannot receive webhooks. Thin."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from mailport.api.deps import Caller, error_responses, get_services, require_tenant
from mailport.bootstrap import Services
from mailport.delivery.schemas import EventPage, EventRead
from mailport.delivery.service import MAX_EVENTS_LIMIT

router = APIRouter(prefix="/v1/events", tags=["events"], responses=error_responses(401, 403, 422))


@router.get("", summary="Events after a cursor, oldest first (reading them accepts them)")
async def list_events(
    after: str | None = Query(
        None,
        max_length=20,
        description="`next_cursor` of the previous call; leave out to start at the beginning",
    ),
    limit: int = Query(100, ge=1, le=MAX_EVENTS_LIMIT),
    mailbox_id: str | None = Query(None, max_length=64, description="Only this mailbox's events"),
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> EventPage:
    assert caller.tenant_id is not None
    items, next_cursor = await services.webhooks.events_after(
        caller.tenant_id, after=after, limit=limit, mailbox_id=mailbox_id
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
