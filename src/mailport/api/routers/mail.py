"""``/v1/mailboxes/{id}/messages…``: any message of a mailbox, live from its server — list,
search, read (HTML sanitized for embedding), flag, move, delete, one by one or in bulk, and
import. ``…/raw`` and ``…/attachments/{n}`` of a ``ref_…`` are served by
:mod:`mailport.api.routers.messages`, which also serves ingested ``msg_…`` ids.

Every call goes through :class:`mailport.mailboxes.access.MailAccess` (tenant check, the
connector's features, a pooled connection, errors mapped once); the router only translates
HTTP. Shapes: docs/mailbox-access.md.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AfterValidator, StringConstraints

from mailport.api.deps import Caller, error_responses, get_services, require_tenant
from mailport.connectors.mail import DEFAULT_LIMIT, MAX_LIMIT, ListQuery
from mailport.errors import InputError, MessageTooLargeError
from mailport.mailboxes.mail_schemas import (
    BulkDeleteRequest,
    BulkFlagsRequest,
    BulkMoveRequest,
    FlagsRequest,
    ImportedOut,
    MessageItem,
    MessageOut,
    MessagePage,
    MovedItem,
    MovedList,
    MovedOut,
    MoveRequest,
    SearchRequest,
    keyword,
    utc,
)
from mailport.mailboxes.message_view import HtmlMode
from mailport.mailboxes.validation import clean_folder
from mailport.services import Services
from mailport.validation import clean_line

IMPORT_PATH = "/v1/mailboxes/{}/messages/import"  # its own body limit (api.app)
IMPORT_TYPES = ("message/rfc822", "application/octet-stream")

RETRY_AFTER_HEADER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error responses of a live mailbox route (the codes each status carries)."""
    found = error_responses(401, 403, 404, 422, 503, *statuses)
    found[404]["description"] = (
        "No such mailbox (or another tenant's) `not_found`, message `message_not_found` or "
        "folder `folder_not_found`"
    )
    found[422]["description"] = (
        "Invalid input (`invalid_input`, `unknown_field`, `invalid_cursor`), a feature the "
        "connector lacks (`unsupported_feature`), or the server refused the login"
    )
    found[503]["description"] = (
        "The server could not be reached or the mailbox's connections stayed busy "
        "(`mailbox_unreachable`, `mailbox_busy`, `too_many_connections`, `auth_unavailable`)"
    )
    found[503]["headers"] = RETRY_AFTER_HEADER
    if 410 in found:
        found[410]["description"] = "The folder was reset since the cursor was made (`cursor_expired`)"
    if 413 in found:
        found[413]["description"] = "Over MAILPORT_MAX_MESSAGE_BYTES (`message_too_large`)"
    if 409 in found:
        found[409]["description"] = "A folder of that name exists (`folder_exists`)"
    return found


router = APIRouter(prefix="/v1/mailboxes/{mailbox_id}/messages", tags=["messages"], responses=responses())

FolderQuery = Annotated[
    str,
    StringConstraints(min_length=1, max_length=500),
    AfterValidator(clean_folder),
    Query(description="A folder's path, as the folder list shows it."),
]
CursorQuery = Annotated[
    str | None,
    StringConstraints(min_length=1, max_length=2000),
    AfterValidator(lambda v: v if v is None else clean_line(v)),
    Query(description="The `next_cursor` of the previous page."),
]


def _tenant(caller: Caller) -> str:
    assert caller.tenant_id is not None
    return caller.tenant_id


@router.get(
    "", summary="Messages of a folder, newest first", response_model=MessagePage, responses=responses(410)
)
async def list_messages(
    mailbox_id: str,
    folder: FolderQuery = "INBOX",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    unseen: Annotated[bool | None, Query(description="true: only unseen; false: only seen")] = None,
    since: Annotated[datetime | None, Query(description="Received at or after (ISO 8601)")] = None,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> MessagePage:
    query = ListQuery(folder=folder, limit=limit, cursor=cursor, unseen=unseen, since=utc(since))
    page = await services.mail.list_messages(_tenant(caller), mailbox_id, query)
    return MessagePage(
        data=[MessageItem.model_validate(item) for item in page.items], next_cursor=page.next_cursor
    )


@router.post(
    "/search",
    summary="Messages matching a query, newest first",
    response_model=MessagePage,
    responses=responses(410),
)
async def search_messages(
    mailbox_id: str,
    body: SearchRequest,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> MessagePage:
    page = await services.mail.search(_tenant(caller), mailbox_id, body.query())
    return MessagePage(
        data=[MessageItem.model_validate(item) for item in page.items], next_cursor=page.next_cursor
    )


@router.post("/flags", summary="Change the flags of many messages", status_code=204, response_class=Response)
async def bulk_flags(
    mailbox_id: str,
    body: BulkFlagsRequest,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> Response:
    await services.mail.update_flags(_tenant(caller), mailbox_id, body.refs, body.change())
    return Response(status_code=204)


@router.post("/move", summary="Move many messages to a folder", response_model=MovedList)
async def bulk_move(
    mailbox_id: str,
    body: BulkMoveRequest,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> MovedList:
    moved = await services.mail.move(_tenant(caller), mailbox_id, body.refs, body.folder)
    return MovedList(
        data=[MovedItem(ref=m.old.encode(), new_ref=m.new.encode() if m.new else None) for m in moved]
    )


@router.post(
    "/delete", summary="Delete many messages (to the trash)", status_code=204, response_class=Response
)
async def bulk_delete(
    mailbox_id: str,
    body: BulkDeleteRequest,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> Response:
    await services.mail.delete(_tenant(caller), mailbox_id, body.refs, permanent=body.permanent)
    return Response(status_code=204)


_HEADER_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")


@router.post(
    "/import",
    summary="Store a message in a folder (IMAP APPEND)",
    status_code=201,
    response_model=ImportedOut,
    responses=responses(413),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"message/rfc822": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def import_message(
    mailbox_id: str,
    request: Request,
    folder: FolderQuery = "INBOX",
    flags: Annotated[str, Query(max_length=2000, description="Comma-separated: seen,flagged,…")] = "",
    received_at: Annotated[
        datetime | None, Query(description="The received time to store (ISO 8601)")
    ] = None,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> ImportedOut:
    tenant_id = _tenant(caller)
    await services.mailboxes.get(tenant_id, mailbox_id)  # 404 before reading another tenant's body
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type not in IMPORT_TYPES:
        raise InputError(
            f"the body must be a message ({' or '.join(IMPORT_TYPES)}), not {content_type or 'untyped'}",
            field="content-type",
            hint="Send the raw message with Content-Type: message/rfc822 (curl --data-binary @mail.eml).",
        )
    names = [name.strip() for name in flags.split(",") if name.strip()]
    try:
        names = [keyword(name) for name in names]
    except ValueError as exc:
        raise InputError(f"flags: {exc}", field="flags") from None
    raw = await request.body()
    limit = services.settings.max_message_bytes
    if len(raw) > limit:
        raise message_too_large(limit)
    if not _HEADER_LINE.match(raw.lstrip(b"\r\n")):
        raise InputError(
            "the body is not a message: it does not start with a header line",
            field="body",
            hint="Send the message's source (RFC 5322: headers, a blank line, the body).",
        )
    made = await services.mail.import_message(
        tenant_id, mailbox_id, folder, raw, flags=names, received_at=utc(received_at)
    )
    return ImportedOut(ref=made.encode() if made else None)


def message_too_large(limit: int) -> MessageTooLargeError:
    return MessageTooLargeError(
        f"the message is larger than {limit} bytes",
        hint="An operator can raise MAILPORT_MAX_MESSAGE_BYTES; the server may have a limit of its own.",
    )


@router.get("/{ref}", summary="A message, parsed, its HTML sanitized", response_model=MessageOut)
async def get_message(
    mailbox_id: str,
    ref: str,
    html: Annotated[HtmlMode, Query(description="sanitized (safe to embed), original or none")] = (
        HtmlMode.SANITIZED
    ),
    remote_images: Annotated[bool, Query(description="Keep remote images in sanitized HTML")] = False,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> dict[str, Any]:
    base = f"{services.settings.effective_public_url}/v1/mailboxes/{mailbox_id}/messages/{ref}/attachments"
    view = await services.mail.message(
        _tenant(caller),
        mailbox_id,
        ref,
        html=html,
        remote_images=remote_images,
        attachment_url=lambda n: f"{base}/{n}",
    )
    return view.to_dict()


@router.post("/{ref}/flags", summary="Change a message's flags", status_code=204, response_class=Response)
async def set_flags(
    mailbox_id: str,
    ref: str,
    body: FlagsRequest,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> Response:
    await services.mail.update_flags(_tenant(caller), mailbox_id, [ref], body.change())
    return Response(status_code=204)


@router.post("/{ref}/move", summary="Move a message to a folder", response_model=MovedOut)
async def move_message(
    mailbox_id: str,
    ref: str,
    body: MoveRequest,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> MovedOut:
    moved = await services.mail.move(_tenant(caller), mailbox_id, [ref], body.folder)
    new = moved[0].new if moved else None
    return MovedOut(ref=new.encode() if new else None)


@router.delete("/{ref}", summary="Delete a message (to the trash)", status_code=204, response_class=Response)
async def delete_message(
    mailbox_id: str,
    ref: str,
    permanent: Annotated[bool, Query(description="Expunge for good instead of moving to the trash")] = False,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> Response:
    await services.mail.delete(_tenant(caller), mailbox_id, [ref], permanent=permanent)
    return Response(status_code=204)
