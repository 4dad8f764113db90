"""``/v1/mailboxes/{id}/contacts``: a mailbox's contact harvest, its progress, and a sync on
demand (docs/contacts.md, Harvesting). Thin: parse, call :attr:`Services.contact_sync`, render."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from mailport.api.deps import Caller, error_responses, get_services, require_tenant
from mailport.contacts.sync_schemas import ContactSyncOut, SyncRequest
from mailport.services import Services

router = APIRouter(
    prefix="/v1/mailboxes/{mailbox_id}/contacts",
    tags=["contacts"],
    responses=error_responses(401, 403, 404, 422),
)


def _tenant(caller: Caller) -> str:
    assert caller.tenant_id is not None  # require_tenant guarantees it
    return caller.tenant_id


@router.get("", summary="A mailbox's contact harvest: settings and progress")
async def get_contact_sync(
    mailbox_id: str, caller: Caller = Depends(require_tenant), services: Services = Depends(get_services)
) -> ContactSyncOut:
    mailbox, state = await services.contact_sync.state(_tenant(caller), mailbox_id)
    return ContactSyncOut.of(mailbox, state)


@router.post(
    "/sync",
    status_code=202,
    summary="Harvest the mailbox's contacts now",
    responses=error_responses(409),
)
async def request_contact_sync(
    mailbox_id: str,
    body: SyncRequest | None = None,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> ContactSyncOut:
    tenant_id = _tenant(caller)
    await services.contact_sync.request(tenant_id, mailbox_id, full=body.full if body else False)
    mailbox, state = await services.contact_sync.state(tenant_id, mailbox_id)
    return ContactSyncOut.of(mailbox, state)
