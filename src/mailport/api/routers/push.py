"""``POST /v1/push/{connector}/{channel}``: where Gmail (Pub/Sub push) and Microsoft Graph
(change notifications) tell us a mailbox changed.

Called by the providers, not by API clients: no tenant key, and not in the OpenAPI document
(docs/push.md describes it). The connector's receiver and the channel's secret authenticate
each notification (:mod:`mailport.push.service`); the answer comes at once (200 for a
handshake, 202 otherwise) and only a wake-up is recorded. Bodies are bounded by
:data:`MAX_BODY_BYTES` before they are read (:mod:`mailport.api.limits`).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from mailport.api.deps import get_services
from mailport.connectors.push import PushRequest
from mailport.services import Services

PREFIX = "/v1/push/"
# A Pub/Sub push is under 1 KiB, a Graph notification without resource data about 0.6 KiB per
# item: 256 KiB holds hundreds of items, and bounds what an anonymous caller makes us read.
MAX_BODY_BYTES = 256 * 1024

router = APIRouter(prefix="/v1/push", tags=["push"], include_in_schema=False)


@router.post("/{connector}/{channel}")
async def receive(
    connector: str, channel: str, request: Request, services: Services = Depends(get_services)
) -> Response:
    notification = PushRequest(
        channel=channel,
        query=dict(request.query_params),
        headers={name.lower(): value for name, value in request.headers.items()},
        body=await request.body(),
    )
    answer = await services.push.receive(connector, notification)
    headers = {"x-content-type-options": "nosniff", "cache-control": "no-store"}
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type, headers=headers)
