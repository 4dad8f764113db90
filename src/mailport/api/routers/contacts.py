"""``/v1/contacts``: the harvested contacts (list, search, read, change, merge, delete, history,
export) and the tenant's block list. Thin: :class:`mailport.contacts.service.ContactService`
does the work.

Literal paths (``/export``, ``/merge``, ``/exclusions``, ``/blocklist``) are declared before
``/{contact_id}``; the groups router (``/v1/contacts/groups``) is included before this one.

A JWT caller (issue 19) reaches its user's book only: the scope is its user, ``?owner=`` may
name only that user (another is 403 ``owner_forbidden``), another book's contact is
``contact_not_found``; the tenant's block list is tenant-wide configuration (tenant key).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, StringConstraints

from mailport.api.deps import Caller, error_responses, get_services, require_tenant, require_tenant_key
from mailport.api.owners import acting_owner
from mailport.api.paging import Limit, page_of
from mailport.contacts.blocklist import Entries
from mailport.contacts.queries import ContactQuery, Sort
from mailport.contacts.schemas import (
    AddressExclusionsRead,
    BlockListEntry,
    BlockListPut,
    BlockListRead,
    ContactCreate,
    ContactPage,
    ContactRead,
    ContactUpdate,
    HistoryRead,
    MergeRequest,
)
from mailport.contacts.service import ExportFormat
from mailport.services import Services
from mailport.store.pagination import DEFAULT_LIMIT
from mailport.validation import clean_line

router = APIRouter(prefix="/v1/contacts", tags=["contacts"], responses=error_responses(401, 403, 422))


def _line(value: str | None) -> str | None:
    return None if value is None else clean_line(value)


OwnerQuery = Annotated[
    str | None,
    Query(max_length=200, description="Only this owner's contact book (empty: the unowned book)"),
    AfterValidator(_line),
]
CursorQuery = Annotated[
    str | None,
    StringConstraints(max_length=2000),
    AfterValidator(_line),
    Query(description="`next_cursor` of the previous page (of the same `sort`)"),
]
MEDIA_TYPES: dict[str, tuple[str, str]] = {
    "csv": ("text/csv; charset=utf-8", "contacts.csv"),
    "vcard": ("text/vcard; charset=utf-8", "contacts.vcf"),
}


def contact_filters(
    q: Annotated[
        str | None,
        Query(max_length=200, description="A part of a name, an address or a domain (any case)"),
        AfterValidator(_line),
    ] = None,
    domain: Annotated[
        str | None,
        Query(max_length=253, description="Only contacts with an address at this domain or a subdomain"),
        AfterValidator(_line),
    ] = None,
    group: Annotated[
        str | None,
        Query(max_length=64, description="Only members of this group (cg_…)"),
        AfterValidator(_line),
    ] = None,
    two_way: Annotated[bool | None, Query(description="true: only two-way correspondents")] = None,
    sort: Annotated[
        Sort, Query(description="score (default, best first), name, last_seen or first_seen (newest first)")
    ] = "score",
) -> ContactQuery:
    return ContactQuery(q=q or None, domain=domain or None, group=group or None, two_way=two_way, sort=sort)


Filters = Annotated[ContactQuery, Depends(contact_filters)]


def _tenant(caller: Caller) -> str:
    assert caller.tenant_id is not None  # require_tenant guarantees it
    return caller.tenant_id


@dataclass(frozen=True, slots=True)
class Scope:
    """The books a request reaches: the caller's tenant, narrowed to one owner by ``?owner=``."""

    tenant_id: str
    owner: str | None


def book_scope(owner: OwnerQuery = None, caller: Caller = Depends(require_tenant)) -> Scope:
    return Scope(_tenant(caller), acting_owner(caller, owner))


InScope = Annotated[Scope, Depends(book_scope)]


def _blocklist(entries: Entries) -> BlockListRead:
    return BlockListRead(addresses=list(entries.addresses), domains=list(entries.domains))


@router.get("", summary="List and search contacts, best first")
async def list_contacts(
    filters: Filters,
    scope: InScope,
    cursor: CursorQuery = None,
    limit: Limit = DEFAULT_LIMIT,
    services: Services = Depends(get_services),
) -> ContactPage:
    query = replace(filters, limit=limit, cursor=cursor)
    found = await services.contacts.list_contacts(scope.tenant_id, query, owner=scope.owner)
    now = services.contacts.clock()
    return page_of(ContactPage, found, lambda contact: ContactRead.of(contact, now=now))


@router.post("", status_code=201, summary="Add a contact by hand", responses=error_responses(409))
async def create_contact(
    body: ContactCreate, caller: Caller = Depends(require_tenant), services: Services = Depends(get_services)
) -> ContactRead:
    acting_owner(caller, body.owner)  # a user's token adds to its own book only
    contact = await services.contacts.create(_tenant(caller), body, owner=caller.owner)
    return ContactRead.of(contact, now=services.contacts.clock())


@router.get(
    "/export",
    summary="Export contacts as CSV or vCard 4.0 (the list's filters)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "text/vcard": {}}}, **error_responses(404)},
)
async def export_contacts(
    filters: Filters,
    scope: InScope,
    format: Annotated[ExportFormat, Query(description="csv or vcard (vCard 4.0, RFC 6350)")] = "csv",
    services: Services = Depends(get_services),
) -> StreamingResponse:
    chunks = services.contacts.export(scope.tenant_id, format, filters, owner=scope.owner)
    try:
        first = await anext(chunks)  # a bad filter is an error answer, not a broken download
    except StopAsyncIteration:
        first = ""

    async def body() -> AsyncIterator[str]:
        yield first
        async for chunk in chunks:
            yield chunk

    media_type, filename = MEDIA_TYPES[format]
    return StreamingResponse(
        body(), media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@router.post(
    "/merge", summary="Merge contacts into one (the others are deleted)", responses=error_responses(404, 409)
)
async def merge_contacts(
    body: MergeRequest,
    scope: InScope,
    services: Services = Depends(get_services),
) -> ContactRead:
    contact = await services.contacts.merge(scope.tenant_id, body.into, body.from_, owner=scope.owner)
    return ContactRead.of(contact, now=services.contacts.clock())


@router.get("/exclusions", summary="Why an address was left out (contact or not)")
async def address_exclusions(
    address: Annotated[
        str, Query(min_length=1, max_length=320, description="Any email address"), AfterValidator(clean_line)
    ],
    scope: InScope,
    services: Services = Depends(get_services),
) -> AddressExclusionsRead:
    report = await services.contacts.exclusions(scope.tenant_id, address, owner=scope.owner)
    return AddressExclusionsRead.of(report)


@router.get("/blocklist", summary="The tenant's block list (never harvested)")
async def get_blocklist(
    caller: Caller = Depends(require_tenant_key), services: Services = Depends(get_services)
) -> BlockListRead:
    return _blocklist(await services.contacts.blocklist(_tenant(caller)))


@router.put("/blocklist", summary="Replace the tenant's block list")
async def put_blocklist(
    body: BlockListPut,
    caller: Caller = Depends(require_tenant_key),
    services: Services = Depends(get_services),
) -> BlockListRead:
    return _blocklist(await services.contacts.set_blocklist(_tenant(caller), body.addresses, body.domains))


@router.post("/blocklist", summary="Add an address or a domain to the block list")
async def add_to_blocklist(
    body: BlockListEntry,
    caller: Caller = Depends(require_tenant_key),
    services: Services = Depends(get_services),
) -> BlockListRead:
    entries = await services.contacts.block(_tenant(caller), address=body.address, domain=body.domain)
    return _blocklist(entries)


@router.delete("/blocklist", summary="Take an address or a domain off the block list")
async def remove_from_blocklist(
    address: Annotated[str | None, Query(max_length=320), AfterValidator(_line)] = None,
    domain: Annotated[str | None, Query(max_length=253), AfterValidator(_line)] = None,
    caller: Caller = Depends(require_tenant_key),
    services: Services = Depends(get_services),
) -> BlockListRead:
    return _blocklist(await services.contacts.unblock(_tenant(caller), address=address, domain=domain))


@router.get("/{contact_id}", summary="Get a contact", responses=error_responses(404))
async def get_contact(
    contact_id: str,
    scope: InScope,
    services: Services = Depends(get_services),
) -> ContactRead:
    contact = await services.contacts.get(scope.tenant_id, contact_id, owner=scope.owner)
    return ContactRead.of(contact, now=services.contacts.clock())


@router.patch(
    "/{contact_id}",
    summary="Change a contact's name, organisation, notes or primary address",
    responses=error_responses(404),
)
async def update_contact(
    contact_id: str,
    body: ContactUpdate,
    scope: InScope,
    services: Services = Depends(get_services),
) -> ContactRead:
    contact = await services.contacts.update(scope.tenant_id, contact_id, body, owner=scope.owner)
    return ContactRead.of(contact, now=services.contacts.clock())


@router.delete(
    "/{contact_id}",
    status_code=204,
    summary="Delete a contact (harvesting does not bring it back)",
    responses=error_responses(404),
)
async def delete_contact(
    contact_id: str,
    scope: InScope,
    services: Services = Depends(get_services),
) -> Response:
    await services.contacts.delete(scope.tenant_id, contact_id, owner=scope.owner)
    return Response(status_code=204)


@router.get(
    "/{contact_id}/history",
    summary="Where a contact comes from, what left its addresses out, its groups",
    responses=error_responses(404),
)
async def contact_history(
    contact_id: str,
    scope: InScope,
    services: Services = Depends(get_services),
) -> HistoryRead:
    return HistoryRead.of(await services.contacts.history(scope.tenant_id, contact_id, owner=scope.owner))
