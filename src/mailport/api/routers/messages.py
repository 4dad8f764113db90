"""``/v1/mailboxes/{id}/messages/{message_id}/raw`` and ``…/attachments/{n}``: the raw source
of a message and the decoded content of its attachments (numbered as in the payload).

Two kinds of ids share these paths. A ``ref_…`` (any message, live from the server: the ``ref``
of listings and payloads) is read through :class:`~mailport.mailboxes.access.MailAccess`. A
``msg_…`` (an ingested message: the ``id`` of the ``message.received`` payload) is read from the
store: 404 ``raw_not_stored`` when the message was oversized (never stored), 410
``message_source_expired`` when the janitor dropped it after the retention period
(:mod:`mailport.store.retention`)."""

from __future__ import annotations

import asyncio
import re

from fastapi import APIRouter, Depends, Path, Response

from mailport.api.deps import Caller, error_responses, get_services, require_tenant
from mailport.connectors.base import MessageRef
from mailport.errors import MessageSourceExpiredError, NotFoundError, RawSourceNotStoredError
from mailport.messages import attachment_content
from mailport.services import Services
from mailport.store.ids import plausible_id
from mailport.sync import repository as repo

_RESPONSES = error_responses(401, 403, 404, 410, 413, 422, 503)
_RESPONSES[404]["description"] = (
    "No such mailbox (or another tenant's) or message (`not_found`, `message_not_found`, `raw_not_stored`)"
)
_RESPONSES[410]["description"] = "The raw source expired (retention period): `message_source_expired`"
_RESPONSES[413]["description"] = "A live message over MAILPORT_MAX_MESSAGE_BYTES (`message_too_large`)"
_RESPONSES[422]["description"] = (
    "A malformed ref (`invalid_input`), a connector without live reading (`unsupported_feature`) "
    "or a refused login"
)
_RESPONSES[503]["description"] = (
    "A ref_… whose server could not be reached or stayed busy (`mailbox_unreachable`, "
    "`mailbox_busy`); see Retry-After"
)
_RESPONSES[503]["headers"] = {
    "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
}

router = APIRouter(prefix="/v1/mailboxes/{mailbox_id}/messages", tags=["messages"], responses=_RESPONSES)

_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]")


def _tenant(caller: Caller) -> str:
    assert caller.tenant_id is not None
    return caller.tenant_id


def _live(message_id: str) -> bool:
    return message_id.startswith(MessageRef.PREFIX)


async def _raw(services: Services, tenant_id: str, mailbox_id: str, message_id: str) -> bytes:
    if _live(message_id):
        return await services.mail.raw(tenant_id, mailbox_id, message_id)
    if not (plausible_id(mailbox_id) and plausible_id(message_id)):
        raise NotFoundError(f"no message {message_id!r} in mailbox {mailbox_id!r}")
    async with services.database.connect() as conn:
        row = await repo.get_message(conn, tenant_id, mailbox_id, message_id)
    if row is None:
        raise NotFoundError(
            f"no message {message_id!r} in mailbox {mailbox_id!r}",
            hint="Use the `id` of the message.received event's data.",
        )
    if row.raw is None and not row.oversized and row.raw_purged_at is not None:
        raise MessageSourceExpiredError(
            f"the raw source of message {message_id} expired on {row.raw_purged_at:%Y-%m-%d} "
            "(retention period)"
        )
    if row.raw is None:
        raise RawSourceNotStoredError(f"message {message_id} ({row.size} bytes) was ingested headers only")
    return bytes(row.raw)


@router.get("/{message_id}/raw", summary="The message's raw source (RFC 5322)")
async def get_raw(
    mailbox_id: str,
    message_id: str,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> Response:
    raw = await _raw(services, _tenant(caller), mailbox_id, message_id)
    return Response(raw, media_type="message/rfc822")


@router.get("/{message_id}/attachments/{n}", summary="An attachment's decoded content")
async def get_attachment(
    mailbox_id: str,
    message_id: str,
    n: int = Path(ge=0, le=10_000),
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> Response:
    if _live(message_id):
        meta, data = await services.mail.attachment(_tenant(caller), mailbox_id, message_id, n)
    else:
        raw = await _raw(services, _tenant(caller), mailbox_id, message_id)
        meta, data = await asyncio.to_thread(attachment_content, raw, n)
    filename = _UNSAFE.sub("_", meta.filename or f"attachment-{n}")[:200]
    return Response(
        data,
        media_type=meta.content_type or "application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
        },
    )
