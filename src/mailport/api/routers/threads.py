"""``GET /v1/mailboxes/{id}/threads/{key}``: a conversation, live from the server, oldest first,
across the inbox and the sent folder (and All Mail where there is one). ``key`` is the 32-hex
``thread_key`` of listings, searches and ``message.received`` events of this mailbox."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from mailport.api.deps import Caller, error_responses, get_services, require_tenant
from mailport.mailboxes.mail_schemas import MessageItem, ThreadOut
from mailport.services import Services

_RESPONSES = error_responses(401, 403, 404, 422, 503)
_RESPONSES[404]["description"] = (
    "No such mailbox (or another tenant's) `not_found`, or a key this mailbox never handed out "
    "`thread_not_found`"
)
_RESPONSES[422]["description"] = (
    "Not a thread key (`invalid_input`), a connector without threads (`unsupported_feature`), "
    "or the server refused the login"
)
_RESPONSES[503]["description"] = (
    "The server could not be reached or the mailbox's connections stayed busy "
    "(`mailbox_unreachable`, `mailbox_busy`); see Retry-After"
)
_RESPONSES[503]["headers"] = {
    "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
}

router = APIRouter(prefix="/v1/mailboxes/{mailbox_id}/threads", tags=["messages"], responses=_RESPONSES)


@router.get("/{key}", summary="A conversation's messages, oldest first", response_model=ThreadOut)
async def get_thread(
    mailbox_id: str,
    key: str,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> ThreadOut:
    assert caller.tenant_id is not None
    found = await services.mail.thread_by_key(caller.tenant_id, mailbox_id, key)
    return ThreadOut(data=[MessageItem.model_validate(item) for item in found])
