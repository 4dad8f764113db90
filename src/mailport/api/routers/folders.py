"""``GET /v1/mailboxes/{id}/folders``: the mailbox's folders, live from its server."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from mailport.api.deps import Caller, error_responses, get_services, require_tenant
from mailport.mailboxes.folders import FolderList, FolderOut
from mailport.services import Services

_RESPONSES = error_responses(401, 403, 404, 422, 503)
_RESPONSES[422]["description"] = (
    "The mailbox's connector has no folders (`unsupported_feature`), or the server refused the login"
)
_RESPONSES[503]["description"] = (
    "The server could not be reached just now (`mailbox_unreachable`, `too_many_connections`, "
    "`auth_unavailable`); see Retry-After"
)

router = APIRouter(prefix="/v1/mailboxes/{mailbox_id}/folders", tags=["folders"], responses=_RESPONSES)


@router.get("", summary="The mailbox's folders, with roles and counts", response_model=FolderList)
async def get_folders(
    mailbox_id: str,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> FolderList:
    assert caller.tenant_id is not None
    folders = await services.mail.folders(caller.tenant_id, mailbox_id)
    return FolderList(data=[FolderOut.model_validate(folder) for folder in folders])
