"""``POST /v1/check`` and ``POST /v1/mailboxes/{id}/test``. Thin: parse, call the service, render."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from mailport.api.deps import Caller, error_responses, get_services, require_tenant
from mailport.check.schemas import CheckRequest, CheckResponse
from mailport.services import Services

router = APIRouter(prefix="/v1", tags=["check"], responses=error_responses(401, 403, 422))

_DESCRIPTION = (
    "DNS, TCP, TLS (protocol, certificate, verification), greeting and capabilities, STARTTLS, "
    "sign-in and SELECT INBOX for IMAP; EHLO, STARTTLS/TLS and AUTH for SMTP — concurrently, each "
    "step under a deadline, all within `MAILPORT_CHECK_TIMEOUT`. A failing step has a stable `code`, "
    "a `hint` naming the fix and the server's own words (`server_said`); see docs/check.md. "
    "The answer is 200 whether or not the mailbox works (`ok`)."
)


def _tenant(caller: Caller) -> str:
    assert caller.tenant_id is not None  # require_tenant guarantees it
    return caller.tenant_id


@router.post(
    "/check",
    summary="Test IMAP/SMTP settings and credentials (nothing is stored)",
    description=_DESCRIPTION
    + " Hosts resolving to private, loopback, link-local or metadata addresses are refused with "
    "`host_not_allowed` (422) unless the operator allows them; rate-limited per tenant "
    "(429 `rate_limited` with `Retry-After`).",
    response_model=CheckResponse,
    responses={
        **error_responses(429),
        200: {"description": "The check ran; `ok` says whether every step passed"},
    },
)
async def check(
    body: CheckRequest, caller: Caller = Depends(require_tenant), services: Services = Depends(get_services)
) -> JSONResponse:
    result = await services.checks.check(_tenant(caller), body)
    return JSONResponse(result.to_dict())


@router.post(
    "/mailboxes/{mailbox_id}/test",
    tags=["mailboxes"],
    summary="Test a stored mailbox and record its status",
    description=_DESCRIPTION
    + " Uses the stored settings and password (or, for OAuth2, a fresh access token). Sets the "
    "mailbox's `status` (connected, error, reauth_required), `last_tested_at`, `last_error` and "
    "error count.",
    response_model=CheckResponse,
    responses=error_responses(404),
)
async def test_mailbox(
    mailbox_id: str, caller: Caller = Depends(require_tenant), services: Services = Depends(get_services)
) -> JSONResponse:
    result = await services.checks.test_mailbox(_tenant(caller), mailbox_id)
    return JSONResponse(result.to_dict())
