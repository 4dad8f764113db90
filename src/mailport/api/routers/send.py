"""``POST /v1/mailboxes/{id}/send`` and the outbox (``GET …/outbox``, ``GET|DELETE
…/outbox/{send_id}``): queue a message, read the queue, cancel a send. Shapes: docs/sending.md.

The send route reads its body itself instead of declaring a body parameter: it takes JSON (the
structured form, or ``{"raw": base64}``) or the message itself (``Content-Type:
message/rfc822``, ``send_at``/``sent_copy`` in the query), and FastAPI's body parameters take
one media type. The JSON is validated by :class:`~mailport.sending.schemas.SendIn` and its
errors are raised as FastAPI's own, so a 422 reads like every other route's. Everything else
is :attr:`mailport.services.Services.sending`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from mailport.api.deps import Caller, error_responses, get_services, require_tenant
from mailport.api.paging import Cursor, Limit, page_of
from mailport.errors import InputError, MessageTooLargeError
from mailport.sending.models import SendRequest, SendState
from mailport.sending.schemas import OutboundOut, OutboxPage, SendIn, aware, check_idempotency_key
from mailport.services import Services
from mailport.store.pagination import DEFAULT_LIMIT

SEND_PATH = "/v1/mailboxes/{}/send"  # its own body limit (api.app, send_body_limit)
RAW_TYPES = ("message/rfc822", "application/octet-stream")
JSON_SLACK = 256 * 1024  # the JSON around the base64 (addresses, text, html …)


def send_body_limit(max_message_bytes: int) -> int:
    """The send route's body limit: a message of ``max_message_bytes`` as base64 in JSON (4/3
    of it), with room for the rest of the request."""
    return max_message_bytes * 4 // 3 + JSON_SLACK


def message_too_large(limit: int) -> MessageTooLargeError:
    return MessageTooLargeError(
        f"the message is larger than {limit} bytes",
        hint="An operator can raise MAILPORT_MAX_MESSAGE_BYTES; the SMTP server may have a limit of its own.",
    )


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    found = error_responses(401, 403, 404, 422, *statuses)
    found[404]["description"] = "No such mailbox (or another tenant's) `not_found`, or send `send_not_found`"
    return found


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its ``$defs`` written in place (the OpenAPI request body of a route
    without a body parameter cannot point into ``#/components``; the models do not recurse)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.removeprefix("#/$defs/")]))
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    inlined: dict[str, Any] = walk(schema)
    return inlined


SEND_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _inline_refs(SendIn.model_json_schema(by_alias=True))},
            "message/rfc822": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}

router = APIRouter(prefix="/v1/mailboxes/{mailbox_id}", tags=["sending"])


def _tenant(caller: Caller) -> str:
    assert caller.tenant_id is not None
    return caller.tenant_id


def _idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_idempotency_key(value)
    except ValueError as exc:
        raise InputError(f"Idempotency-Key: {exc}", field="Idempotency-Key") from None


def _json_request(raw: bytes, limit: int) -> SendRequest:
    try:
        body = SendIn.model_validate_json(raw or b"null")
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_input=False)]
        ) from None
    request = body.to_request()
    if request.raw is not None and len(request.raw) > limit:
        raise message_too_large(limit)
    attached = sum(len(getattr(a, "data", b"")) for a in request.attachments)
    if attached > limit:
        raise message_too_large(limit)
    return request


@router.post(
    "/send",
    summary="Send a message (queued: 202)",
    status_code=202,
    response_model=OutboundOut,
    responses=_responses(409, 413),
    openapi_extra=SEND_BODY,
)
async def send(
    mailbox_id: str,
    request: Request,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="1-255 visible ASCII characters: the same key and body within 24 h sends "
            "once (the first result, with Idempotent-Replayed: true); another body is 409",
        ),
    ] = None,
    send_at: Annotated[
        datetime | None, Query(description="message/rfc822 only: send at this time (with its zone)")
    ] = None,
    sent_copy: Annotated[
        bool | None, Query(description="message/rfc822 only: store a copy in Sent (default: the mailbox's)")
    ] = None,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> OutboundOut:
    tenant_id = _tenant(caller)
    key = _idempotency_key(idempotency_key)
    await services.mailboxes.get(tenant_id, mailbox_id)  # 404 before reading another tenant's body
    limit = services.settings.max_message_bytes
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    raw = await request.body()
    if content_type in RAW_TYPES:
        if len(raw) > limit:
            raise message_too_large(limit)
        if not raw.strip():
            raise InputError("the body is empty: send the message itself", field="body")
        try:
            when = aware(send_at)
        except ValueError as exc:
            raise InputError(f"send_at: {exc}", field="send_at") from None
        send_request = SendRequest(raw=raw, send_at=when, sent_copy=sent_copy)
    elif content_type in ("application/json", ""):
        for name, value in (("send_at", send_at), ("sent_copy", sent_copy)):
            if value is not None:
                raise InputError(
                    f"{name} goes in the JSON body (the query's {name} is for message/rfc822)", field=name
                )
        send_request = _json_request(raw, limit)
    else:
        raise InputError(
            f"the body must be JSON or a message (message/rfc822), not {content_type}",
            field="content-type",
            hint="Send JSON with Content-Type: application/json, or the raw message with "
            "Content-Type: message/rfc822 (curl --data-binary @mail.eml).",
        )
    queued = await services.sending.send(tenant_id, mailbox_id, send_request, idempotency_key=key)
    response.headers["Location"] = f"/v1/mailboxes/{mailbox_id}/outbox/{queued.send.id}"
    if queued.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return OutboundOut.from_model(queued.send)


@router.get(
    "/outbox", summary="The outbound queue, newest first", response_model=OutboxPage, responses=_responses()
)
async def list_outbox(
    mailbox_id: str,
    state: Annotated[SendState | None, Query(description="Only sends in this state")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> OutboxPage:
    found = await services.sending.list(_tenant(caller), mailbox_id, state=state, limit=limit, cursor=cursor)
    return page_of(OutboxPage, found, OutboundOut.from_model)


@router.get(
    "/outbox/{send_id}",
    summary="One send of the outbound queue",
    response_model=OutboundOut,
    responses=_responses(),
)
async def get_send(
    mailbox_id: str,
    send_id: str,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> OutboundOut:
    return OutboundOut.from_model(await services.sending.get(_tenant(caller), mailbox_id, send_id))


@router.delete(
    "/outbox/{send_id}",
    summary="Cancel a scheduled or queued send",
    response_model=OutboundOut,
    responses=_responses(409),
)
async def cancel_send(
    mailbox_id: str,
    send_id: str,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> OutboundOut:
    return OutboundOut.from_model(await services.sending.cancel(_tenant(caller), mailbox_id, send_id))
