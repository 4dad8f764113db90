"""``POST /v1/connect-links``: a signed, expiring, single-use URL to the hosted wizard.

Thin: parse, call :class:`mailport.web.links.ConnectLinks`, render. See docs/web.md. A link
may carry an ``owner``: the mailbox it connects is created for that user (a JWT caller's links
always carry its own user; naming another is 403 ``owner_forbidden``).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from mailport.api.deps import Caller, error_responses, require_tenant
from mailport.api.owners import acting_owner
from mailport.mailboxes.schemas import Owner, Purpose
from mailport.validation import Email, HttpUrl, RequestModel
from mailport.web.links import DEFAULT_EXPIRES_IN, MAX_EXPIRES_IN, MIN_EXPIRES_IN
from mailport.web.state import get_web

router = APIRouter(prefix="/v1", tags=["connect-links"], responses=error_responses(401, 403, 422))


class ConnectLinkIn(RequestModel):
    purpose: Purpose | None = None
    email: Email | None = Field(None, description="Pre-filled in the wizard's first step")
    return_url: HttpUrl | None = Field(
        None,
        description="Absolute http(s) URL; the browser is sent there with `?mailbox_id=…&status=connected`",
    )
    expires_in: int = Field(DEFAULT_EXPIRES_IN, ge=MIN_EXPIRES_IN, le=MAX_EXPIRES_IN, description="Seconds")
    connector: Literal["imap", "api", "gmail_api", "graph"] | None = Field(
        None,
        description="For Google and Microsoft accounts: `api` (or `gmail_api` / `graph`) connects through "
        "the provider's mail API, `imap` over IMAP/SMTP; null lets the visitor choose (API pre-selected)",
    )
    owner: Owner | None = Field(
        None,
        description="The host application's user the mailbox is created for (a user's token: its own "
        "user, also when left out); null: the tenant's",
    )


class ConnectLinkOut(BaseModel):
    id: str
    url: str = Field(description="Hand this to the end user; it works once")
    expires_at: datetime
    purpose: str | None
    email: str | None
    return_url: str | None
    connector: str | None
    owner: str | None


@router.post("/connect-links", status_code=201, summary="A single-use link to the hosted connect wizard")
async def create_connect_link(
    body: ConnectLinkIn, request: Request, caller: Caller = Depends(require_tenant)
) -> ConnectLinkOut:
    assert caller.tenant_id is not None
    issued = get_web(request).links.issue(
        caller.tenant_id,
        purpose=body.purpose,
        email=body.email,
        return_url=body.return_url,
        expires_in=body.expires_in,
        connector=body.connector,
        owner=acting_owner(caller, body.owner or None),
    )
    fields = asdict(issued.link)
    del fields["tenant_id"]  # the caller's own tenant: not part of the answer
    return ConnectLinkOut(url=issued.url, **fields)
