"""``/v1/push-channels``: a tenant's shared push channels (Gmail's Pub/Sub push endpoint). Thin:
:mod:`mailport.push.shared` does the work; the endpoint with its token is shown once."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from mailport.api.deps import Caller, error_responses, get_services, require_tenant_key
from mailport.push.shared import SharedChannel, SharedChannels
from mailport.services import Services
from mailport.validation import RequestModel

router = APIRouter(prefix="/v1/push-channels", tags=["push"], responses=error_responses(401, 403, 422))


class PushChannelCreate(RequestModel):
    topic: str = Field(
        min_length=1,
        max_length=300,
        description="The Pub/Sub topic the tenant's Gmail mailboxes publish to: projects/<p>/topics/<t>",
    )


class PushChannelRead(BaseModel):
    id: str
    connector: str
    topic: str | None
    created_at: datetime


class PushChannelCreated(PushChannelRead):
    push_endpoint: str = Field(
        description="The Pub/Sub push subscription's endpoint, with the channel's token: shown once"
    )


def _tenant(caller: Caller) -> str:
    assert caller.tenant_id is not None  # require_tenant guarantees it
    return caller.tenant_id


def _shared(services: Services) -> SharedChannels:
    return SharedChannels(services.push.channels, public_url=services.settings.effective_public_url)


def _read(channel: SharedChannel) -> PushChannelRead:
    return PushChannelRead(
        id=channel.id, connector=channel.connector, topic=channel.topic, created_at=channel.created_at
    )


@router.post(
    "/{connector}",
    status_code=201,
    summary="Create the tenant's push channel for a connector (the endpoint is shown once)",
    responses=error_responses(404, 409),
)
async def create_push_channel(
    connector: str,
    body: PushChannelCreate,
    caller: Caller = Depends(require_tenant_key),
    services: Services = Depends(get_services),
) -> PushChannelCreated:
    created = await _shared(services).create(_tenant(caller), connector, topic=body.topic)
    return PushChannelCreated(**_read(created.channel).model_dump(), push_endpoint=created.push_endpoint)


@router.get("", summary="List the tenant's push channels (without secrets)")
async def list_push_channels(
    caller: Caller = Depends(require_tenant_key), services: Services = Depends(get_services)
) -> list[PushChannelRead]:
    return [_read(c) for c in await _shared(services).list(_tenant(caller))]


@router.delete(
    "/{channel_id}", status_code=204, summary="Delete a push channel", responses=error_responses(404)
)
async def delete_push_channel(
    channel_id: str, caller: Caller = Depends(require_tenant_key), services: Services = Depends(get_services)
) -> Response:
    await _shared(services).delete(_tenant(caller), channel_id)
    return Response(status_code=204)
