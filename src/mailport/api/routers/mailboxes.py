"""``/v1/mailboxes``: a tenant's mailboxes. Thin: parse, call the service, render.

A JWT caller (issue 19) lists only its user's mailboxes, creates them for its user, and cannot
give one to another owner; the path guard in :mod:`mailport.api.deps` answers 404 for the
others' ``/v1/mailboxes/{mailbox_id}``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import AfterValidator

from mailport.api.deps import Caller, error_responses, get_services, require_tenant
from mailport.api.owners import acting_owner
from mailport.api.paging import Cursor, Limit, page_of
from mailport.errors import ConflictError
from mailport.mailboxes.models import MailboxStatus
from mailport.mailboxes.schemas import MailboxCreate, MailboxPage, MailboxRead, MailboxUpdate
from mailport.mailboxes.validation import clean_optional_line
from mailport.services import Services
from mailport.store.pagination import DEFAULT_LIMIT

router = APIRouter(prefix="/v1/mailboxes", tags=["mailboxes"], responses=error_responses(401, 403, 422))


def _tenant(caller: Caller) -> str:
    assert caller.tenant_id is not None  # require_tenant guarantees it
    return caller.tenant_id


@router.post("", status_code=201, summary="Add a mailbox", responses=error_responses(409))
async def create_mailbox(
    body: MailboxCreate, caller: Caller = Depends(require_tenant), services: Services = Depends(get_services)
) -> MailboxRead:
    owner = acting_owner(caller, body.owner)
    if owner != body.owner:
        body = body.model_copy(update={"owner": owner})
    try:
        return MailboxRead.from_model(await services.mailboxes.create_from(_tenant(caller), body))
    except ConflictError as exc:
        if caller.owner is None:
            raise
        # addresses are unique per tenant; a user's token is not told whose mailbox has it
        raise ConflictError(
            f"a mailbox for {body.email} exists already in this application",
            field="email",
            hint="Connect another address, or ask the application to move the mailbox to you.",
        ) from exc


@router.get("", summary="List mailboxes")
async def list_mailboxes(
    purpose: Annotated[
        str | None,
        Query(max_length=100, description="Only mailboxes with this purpose"),
        AfterValidator(clean_optional_line),
    ] = None,
    status: MailboxStatus | None = Query(None, description="Only mailboxes in this state"),
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> MailboxPage:
    found = await services.mailboxes.list(
        _tenant(caller), purpose=purpose, status=status, owner=caller.owner, cursor=cursor, limit=limit
    )
    return page_of(MailboxPage, found, MailboxRead.from_model)


@router.get("/{mailbox_id}", summary="Get a mailbox", responses=error_responses(404))
async def get_mailbox(
    mailbox_id: str, caller: Caller = Depends(require_tenant), services: Services = Depends(get_services)
) -> MailboxRead:
    return MailboxRead.from_model(await services.mailboxes.get(_tenant(caller), mailbox_id))


@router.patch(
    "/{mailbox_id}",
    summary="Change a mailbox (password, servers, settings)",
    responses=error_responses(404),
)
async def update_mailbox(
    mailbox_id: str,
    body: MailboxUpdate,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> MailboxRead:
    if "owner" in body.model_fields_set:
        # a user's token keeps its mailboxes: null (the tenant's) or another user is refused
        acting_owner(caller, body.owner or "")
    return MailboxRead.from_model(await services.mailboxes.update(_tenant(caller), mailbox_id, body))


@router.delete("/{mailbox_id}", status_code=204, summary="Delete a mailbox", responses=error_responses(404))
async def delete_mailbox(
    mailbox_id: str, caller: Caller = Depends(require_tenant), services: Services = Depends(get_services)
) -> Response:
    await services.mailboxes.delete(_tenant(caller), mailbox_id)
    return Response(status_code=204)
