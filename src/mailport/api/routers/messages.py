"""``/v1/mailboxes/{id}/messages/{message_id}/raw`` and ``…/attachments/{n}``: the stored raw
source of an ingested message (the ``id`` in the ``message.received`` payload) and the decoded
content of its attachments (numbered as in the payload).

No source: 404 ``raw_not_stored`` when the message was oversized (never stored), 410
``message_source_expired`` when the janitor dropped it after the retention period
(:mod:`mailport.store.retention`)."""

from __future__ import annotations

import asyncio
import re

from fastapi import APIRouter, Depends, Path, Response

from mailport.api.deps import Caller, error_responses, get_services, require_tenant
from mailport.errors import MessageSourceExpiredError, NotFoundError, RawSourceNotStoredError
from mailport.messages import attachment_content
from mailport.services import Services
from mailport.store.ids import plausible_id
from mailport.sync import repository as repo

_RESPONSES = error_responses(401, 403, 404, 410, 422)
_RESPONSES[410]["description"] = "The raw source expired (retention period): `message_source_expired`"

router = APIRouter(prefix="/v1/mailboxes/{mailbox_id}/messages", tags=["messages"], responses=_RESPONSES)

_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]")


def _tenant(caller: Caller) -> str:
    assert caller.tenant_id is not None
    return caller.tenant_id


async def _raw(services: Services, tenant_id: str, mailbox_id: str, message_id: str) -> bytes:
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
