"""``/v1/mailboxes/{id}/folders``: the mailbox's folders, live from its server: list, create,
rename (or move under another parent) and delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from mailport.api.deps import Caller, error_responses, get_services, require_tenant
from mailport.errors import InputError
from mailport.mailboxes.folders import FolderList, FolderOut
from mailport.mailboxes.mail_schemas import FolderCreate, FolderRename
from mailport.mailboxes.validation import clean_folder
from mailport.services import Services

_RESPONSES = error_responses(401, 403, 404, 422, 503)
_RESPONSES[422]["description"] = (
    "The mailbox's connector has no folders (`unsupported_feature`), or the server refused the login"
)
_RESPONSES[404]["description"] = (
    "No such mailbox (or another tenant's) `not_found`, or folder `folder_not_found`"
)
_RESPONSES[503]["description"] = (
    "The server could not be reached just now (`mailbox_unreachable`, `mailbox_busy`, "
    "`too_many_connections`, `auth_unavailable`); see Retry-After"
)
_RESPONSES[503]["headers"] = {
    "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
}
_CONFLICT = error_responses(409)
_CONFLICT[409]["description"] = "A folder of that name exists there (`folder_exists`)"

FolderPath = Annotated[str, Path(description="The folder's path, as the folder list shows it (URL-encoded).")]


def _folder(path: str) -> str:
    """The path parameter checked here: FastAPI would name it ``body`` in the error."""
    try:
        return clean_folder(path)
    except ValueError as exc:
        raise InputError(f"path: {exc}", field="path") from None


router = APIRouter(prefix="/v1/mailboxes/{mailbox_id}/folders", tags=["folders"], responses=_RESPONSES)


@router.get("", summary="The mailbox's folders, with roles and counts", response_model=FolderList)
async def get_folders(
    mailbox_id: str,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> FolderList:
    folders = await services.mail.folders(_tenant(caller), mailbox_id)
    return FolderList(data=[FolderOut.model_validate(folder) for folder in folders])


@router.post(
    "",
    summary="Create a folder",
    status_code=201,
    response_model=FolderOut,
    responses=_CONFLICT,
)
async def create_folder(
    mailbox_id: str,
    body: FolderCreate,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> FolderOut:
    made = await services.mail.create_folder(_tenant(caller), mailbox_id, body.name, parent=body.parent)
    return FolderOut.model_validate(made)


@router.patch(
    "/{path:path}",
    summary="Rename a folder, or move it under another parent",
    response_model=FolderOut,
    responses=_CONFLICT,
)
async def rename_folder(
    mailbox_id: str,
    path: FolderPath,
    body: FolderRename,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> FolderOut:
    renamed = await services.mail.rename_folder(
        _tenant(caller), mailbox_id, _folder(path), name=body.name, parent=body.parent
    )
    return FolderOut.model_validate(renamed)


@router.delete("/{path:path}", summary="Delete a folder", status_code=204, response_class=Response)
async def delete_folder(
    mailbox_id: str,
    path: FolderPath,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> Response:
    await services.mail.delete_folder(_tenant(caller), mailbox_id, _folder(path))
    return Response(status_code=204)


def _tenant(caller: Caller) -> str:
    assert caller.tenant_id is not None
    return caller.tenant_id
