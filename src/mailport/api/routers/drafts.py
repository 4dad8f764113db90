"""``/v1/mailboxes/{id}/drafts…``: drafts kept in the mailbox's drafts folder — list, create,
read, replace, delete, and send (queued like ``POST …/send``). Shapes: docs/sending.md, Drafts.

The body of create and replace is the structured message of ``POST …/send``
(:class:`~mailport.sending.schemas.MessageIn`, without ``send_at``/``sent_copy``/``raw``).
Everything else is :attr:`mailport.services.Services.drafts`; the router only translates HTTP.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import BaseModel, Field

from mailport.api.deps import Caller, error_responses, get_services, require_tenant
from mailport.connectors.mail import DEFAULT_LIMIT, MAX_LIMIT
from mailport.errors import InputError, MessageTooLargeError
from mailport.mailboxes.mail_schemas import MessageItem, MessageOut, MessagePage
from mailport.mailboxes.message_view import HtmlMode
from mailport.sending.drafts import StoredDraft
from mailport.sending.models import SendRequest
from mailport.sending.schemas import MessageIn, OutboundOut, check_idempotency_key
from mailport.services import Services

DRAFTS_PATH = "/v1/mailboxes/{}/drafts"  # create: its own body limit (api.app), as send's
DRAFT_PATH = "/v1/mailboxes/{}/drafts/{}"  # replace


class DraftOut(BaseModel):
    """Where a draft was stored."""

    ref: str | None = Field(description="The draft's ref (null when the server did not tell it).")
    message_id: str = Field(description="Its Message-ID, without angle brackets.")
    folder: str = Field(description="The drafts folder's path.")

    @classmethod
    def from_model(cls, stored: StoredDraft) -> DraftOut:
        return cls.model_validate(stored.to_json())


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error responses of a drafts route (the codes each status carries)."""
    found = error_responses(401, 403, 404, 422, 503, *statuses)
    found[404]["description"] = (
        "No such mailbox (or another tenant's) `not_found`, or the draft is gone `message_not_found`"
    )
    found[422]["description"] = (
        "Invalid input (`invalid_input`, `unknown_field`, `invalid_email`, `sender_not_allowed`; "
        "a ref outside the drafts folder is `invalid_input` with field `ref`), a feature the "
        "connector lacks (`unsupported_feature`), or the server refused the login"
    )
    found[503]["description"] = (
        "The server could not be reached or the mailbox's connections stayed busy "
        "(`mailbox_unreachable`, `mailbox_busy`, `too_many_connections`, `auth_unavailable`)"
    )
    found[503]["headers"] = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
    if 409 in found:
        found[409]["description"] = (
            "The Idempotency-Key was used with another draft (`idempotency_key_reused`)"
        )
    if 413 in found:
        found[413]["description"] = "Over MAILPORT_MAX_MESSAGE_BYTES (`message_too_large`)"
    return found


router = APIRouter(prefix="/v1/mailboxes/{mailbox_id}/drafts", tags=["drafts"], responses=responses())


def _tenant(caller: Caller) -> str:
    assert caller.tenant_id is not None
    return caller.tenant_id


def _request(body: MessageIn, limit: int) -> SendRequest:
    request = body.to_request()
    if sum(len(getattr(a, "data", b"")) for a in request.attachments) > limit:
        raise MessageTooLargeError(
            f"the attachments are larger than {limit} bytes",
            hint="An operator can raise MAILPORT_MAX_MESSAGE_BYTES; the server may have a limit of its own.",
        )
    return request


@router.get("", summary="Drafts, newest first", response_model=MessagePage)
async def list_drafts(
    mailbox_id: str,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(min_length=1, max_length=2000, description="The `next_cursor` of the previous page."),
    ] = None,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> MessagePage:
    found = await services.drafts.list(_tenant(caller), mailbox_id, limit=limit, cursor=cursor)
    items = [MessageItem.model_validate(item) for item in found.page.items]
    return MessagePage(data=items, next_cursor=found.page.next_cursor)


@router.post(
    "",
    summary="Store a new draft",
    status_code=201,
    response_model=DraftOut,
    responses=responses(413),
)
async def create_draft(
    mailbox_id: str,
    body: MessageIn,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> DraftOut:
    request = _request(body, services.settings.max_message_bytes)
    return DraftOut.from_model(await services.drafts.create(_tenant(caller), mailbox_id, request))


@router.get("/{ref}", summary="A draft, parsed", response_model=MessageOut)
async def get_draft(
    mailbox_id: str,
    ref: str,
    html: Annotated[HtmlMode, Query(description="sanitized (safe to embed), original or none")] = (
        HtmlMode.SANITIZED
    ),
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> dict[str, Any]:
    base = f"{services.settings.effective_public_url}/v1/mailboxes/{mailbox_id}/messages/{ref}/attachments"
    view = await services.drafts.get(
        _tenant(caller), mailbox_id, ref, html=html, attachment_url=lambda n: f"{base}/{n}"
    )
    return view.to_dict()


@router.put(
    "/{ref}",
    summary="Replace a draft (a new ref; the old one is deleted)",
    response_model=DraftOut,
    responses=responses(413),
)
async def replace_draft(
    mailbox_id: str,
    ref: str,
    body: MessageIn,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> DraftOut:
    request = _request(body, services.settings.max_message_bytes)
    return DraftOut.from_model(await services.drafts.replace(_tenant(caller), mailbox_id, ref, request))


@router.delete("/{ref}", summary="Delete a draft for good", status_code=204, response_class=Response)
async def delete_draft(
    mailbox_id: str,
    ref: str,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> Response:
    await services.drafts.delete(_tenant(caller), mailbox_id, ref)
    return Response(status_code=204)


@router.post(
    "/{ref}/send",
    summary="Send a draft (queued: 202; the draft is deleted once sent)",
    status_code=202,
    response_model=OutboundOut,
    responses=responses(409),
)
async def send_draft(
    mailbox_id: str,
    ref: str,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="1-255 visible ASCII characters: the same key and draft within 24 h sends "
            "once (the first result, with Idempotent-Replayed: true)",
        ),
    ] = None,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> OutboundOut:
    key = None
    if idempotency_key is not None:
        try:
            key = check_idempotency_key(idempotency_key)
        except ValueError as exc:
            raise InputError(f"Idempotency-Key: {exc}", field="Idempotency-Key") from None
    queued = await services.drafts.send(_tenant(caller), mailbox_id, ref, idempotency_key=key)
    response.headers["Location"] = f"/v1/mailboxes/{mailbox_id}/outbox/{queued.send.id}"
    if queued.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return OutboundOut.from_model(queued.send)
