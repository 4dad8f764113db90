"""``POST /v1/detect``: find IMAP/SMTP settings for an address. Thin: parse, detect, render."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from mailport.api.deps import Caller, error_responses, get_detector, get_services, require_tenant
from mailport.detect import Detector
from mailport.detect.schemas import DetectRequest, DetectResponse
from mailport.services import Services

router = APIRouter(prefix="/v1", tags=["detect"], responses=error_responses(401, 403, 422))


@router.post(
    "/detect",
    summary="Detect mail settings from an email address",
    description=(
        "Provider database, ISP autoconfig, DNS SRV, MX recognition and (if "
        "`MAILPORT_DETECT_PROBE`) probing, within `MAILPORT_DETECT_TIMEOUT`. An unknown or "
        "non-existent domain answers 200 with `source: none` and hints; a malformed address "
        "answers 422 `invalid_email`."
    ),
)
async def detect(
    body: DetectRequest,
    caller: Caller = Depends(require_tenant),
    detector: Detector = Depends(get_detector),
    services: Services = Depends(get_services),
) -> DetectResponse:
    response = DetectResponse.from_result(await detector.detect(body.email))
    if response.oauth is not None and not response.oauth.usable:
        # A tenant may bring its own OAuth app (/v1/oauth-apps): usable for this tenant only.
        usable = await services.oauth.tenant_apps.usable(response.oauth.provider, caller.tenant_id)
        response.oauth = response.oauth.model_copy(update={"usable": usable})
    return response
