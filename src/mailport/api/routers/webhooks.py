"""``/v1/webhooks``: a tenant's webhook endpoints, their deliveries and replay. Thin.

The webhook dispatcher itself runs in :mod:`mailport.runtime`.
"""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Query, Response

from mailport.api.deps import Caller, error_responses, get_services, require_tenant_key
from mailport.api.paging import Cursor, Limit, page_of
from mailport.delivery.models import DeliveryStatus
from mailport.delivery.schemas import (
    BackfillResult,
    DeliveryPage,
    DeliveryRead,
    ReplayRequest,
    ReplayResult,
    WebhookCreate,
    WebhookCreated,
    WebhookPage,
    WebhookRead,
    WebhookUpdate,
)
from mailport.services import Services
from mailport.store.pagination import DEFAULT_LIMIT

router = APIRouter(
    prefix="/v1/webhooks",
    tags=["webhooks"],
    responses=error_responses(401, 403, 422),
)


def _tenant(caller: Caller) -> str:
    assert caller.tenant_id is not None  # require_tenant guarantees it
    return caller.tenant_id


@router.post("", status_code=201, summary="Add a webhook endpoint (the secret is shown once)")
async def create_webhook(
    body: WebhookCreate,
    caller: Caller = Depends(require_tenant_key),
    services: Services = Depends(get_services),
) -> WebhookCreated:
    endpoint, secret = await services.webhooks.create(_tenant(caller), body)
    read = WebhookRead.model_validate(endpoint)
    return WebhookCreated(**read.model_dump(), secret=secret.reveal() if secret is not None else None)


@router.get("", summary="List webhook endpoints")
async def list_webhooks(
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
    caller: Caller = Depends(require_tenant_key),
    services: Services = Depends(get_services),
) -> WebhookPage:
    found = await services.webhooks.list(_tenant(caller), cursor=cursor, limit=limit)
    return page_of(WebhookPage, found, WebhookRead.model_validate)


@router.get("/{webhook_id}", summary="Get a webhook endpoint", responses=error_responses(404))
async def get_webhook(
    webhook_id: str, caller: Caller = Depends(require_tenant_key), services: Services = Depends(get_services)
) -> WebhookRead:
    return WebhookRead.model_validate(await services.webhooks.get(_tenant(caller), webhook_id))


@router.patch(
    "/{webhook_id}",
    summary="Change a webhook endpoint (url, events, secret, enabled)",
    responses=error_responses(404),
)
async def update_webhook(
    webhook_id: str,
    body: WebhookUpdate,
    caller: Caller = Depends(require_tenant_key),
    services: Services = Depends(get_services),
) -> WebhookRead:
    return WebhookRead.model_validate(await services.webhooks.update(_tenant(caller), webhook_id, body))


@router.delete(
    "/{webhook_id}", status_code=204, summary="Delete a webhook endpoint", responses=error_responses(404)
)
async def delete_webhook(
    webhook_id: str, caller: Caller = Depends(require_tenant_key), services: Services = Depends(get_services)
) -> Response:
    await services.webhooks.delete(_tenant(caller), webhook_id)
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries",
    summary="Deliveries to this endpoint, newest first, with every attempt",
    responses=error_responses(404),
)
async def list_deliveries(
    webhook_id: str,
    status: DeliveryStatus | None = Query(None, description="Only deliveries in this state (e.g. dead)"),
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
    caller: Caller = Depends(require_tenant_key),
    services: Services = Depends(get_services),
) -> DeliveryPage:
    found = await services.webhooks.deliveries(
        _tenant(caller), webhook_id, cursor=cursor, limit=limit, status=status
    )
    return page_of(DeliveryPage, found, DeliveryRead.from_model)


@router.post(
    "/{webhook_id}/replay",
    summary="Send dead letters again (all of them, or one delivery)",
    responses=error_responses(404),
)
async def replay_webhook(
    webhook_id: str,
    body: ReplayRequest | None = Body(None),
    caller: Caller = Depends(require_tenant_key),
    services: Services = Depends(get_services),
) -> ReplayResult:
    delivery_id = body.delivery_id if body is not None else None
    count = await services.webhooks.replay(_tenant(caller), webhook_id, delivery_id=delivery_id)
    return ReplayResult(replayed=count)


@router.post(
    "/{webhook_id}/backfill",
    summary="Take over the waiting events of its types that no webhook endpoint owes",
    responses=error_responses(404),
)
async def backfill_webhook(
    webhook_id: str, caller: Caller = Depends(require_tenant_key), services: Services = Depends(get_services)
) -> BackfillResult:
    return BackfillResult(queued=await services.webhooks.backfill(_tenant(caller), webhook_id))
