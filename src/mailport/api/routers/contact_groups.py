"""``/v1/contacts/groups``: contact groups and their members. Thin: :mod:`mailport.contacts.groups`
does the work (the rule language and the kinds of membership are described there and in
docs/contacts.md). Registered before the contacts router, so ``/v1/contacts/groups`` is never
taken for a contact id.

A JWT caller (issue 19) reaches its user's groups only (``?owner=`` and a body ``owner`` may name
only that user: 403 ``owner_forbidden`` otherwise)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from mailport.api.deps import Caller, error_responses, get_services, require_tenant
from mailport.api.owners import acting_owner
from mailport.api.paging import Cursor, Limit
from mailport.clock import utc_now
from mailport.contacts.group_rules import MAX_MESSAGES, Rule
from mailport.contacts.groups import ContactGroup, GroupService, Kind, group_json
from mailport.contacts.views import contact_json
from mailport.services import Services
from mailport.store.pagination import DEFAULT_LIMIT
from mailport.validation import RequestModel, check_text, clean_line, clean_required_line

router = APIRouter(prefix="/v1/contacts/groups", tags=["contacts"], responses=error_responses(401, 403, 422))

GroupName = Annotated[str, StringConstraints(max_length=200), AfterValidator(clean_required_line)]
Description = Annotated[str, StringConstraints(max_length=2000), AfterValidator(check_text)]
Owner = Annotated[str, StringConstraints(max_length=200), AfterValidator(clean_line)]
OwnerFilter = Annotated[
    str | None,
    Query(max_length=200, description="Only this owner's book (empty: the book of unowned mailboxes)"),
]


class RuleIn(RequestModel):
    """A group's rule: every condition given must hold (docs/contacts.md, "Rules")."""

    domains: list[Annotated[str, StringConstraints(max_length=253)]] | None = Field(
        None, min_length=1, max_length=100, description="An address at one of these domains or a subdomain"
    )
    organisation: str | None = Field(None, max_length=253, description="The contact's organisation domain")
    address_contains: str | None = Field(None, max_length=100, description="Text in one of its addresses")
    two_way: StrictBool | None = Field(None, description="Wrote and was written to (false: not both)")
    min_messages: StrictInt | None = Field(None, ge=1, le=MAX_MESSAGES, description="Messages at least")

    @model_validator(mode="after")
    def _valid(self) -> RuleIn:
        self.rule()  # a ValueError says what is wrong
        return self

    def rule(self) -> Rule:
        return Rule.parse(self.model_dump(exclude_none=True))


class _RuleBody(RequestModel):
    rule: RuleIn | None = Field(None, description="null: members are added by hand only")


class GroupCreate(_RuleBody):
    name: GroupName
    description: Description | None = None
    owner: Owner | None = Field(None, description="The owner whose book the group is in; none: the tenant's")


class GroupUpdate(_RuleBody):
    name: GroupName | None = None
    description: Description | None = None

    @field_validator("name")
    @classmethod
    def _name_not_null(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("a group keeps a name")
        return value


class MembersAdd(RequestModel):
    contacts: list[Annotated[str, StringConstraints(max_length=40)]] = Field(
        min_length=1, max_length=200, description="Contact ids (ct_…) of the group's book"
    )


class GroupRead(BaseModel):
    id: str
    owner: str | None
    name: str
    kind: Kind
    description: str | None
    rule: dict[str, Any] | None
    members: int = Field(description="Members now (contacts taken out by hand not counted)")
    created_at: datetime
    updated_at: datetime


class GroupPage(BaseModel):
    items: list[GroupRead]
    next_cursor: str | None


class MemberPage(BaseModel):
    items: list[dict[str, Any]] = Field(
        description="Contacts as GET /v1/contacts/{id} shows them, each with `membership`: "
        "{source: manual|rule|organisation, added_at}"
    )
    next_cursor: str | None


def _tenant(caller: Caller) -> str:
    assert caller.tenant_id is not None  # require_tenant guarantees it
    return caller.tenant_id


@dataclass(frozen=True)
class Scope:
    """Whose groups a request may touch: the caller's tenant, and one owner's book if ``?owner=``."""

    tenant_id: str
    owner: str | None
    groups: GroupService


def _scope(
    owner: OwnerFilter = None,
    caller: Caller = Depends(require_tenant),
    services: Services = Depends(get_services),
) -> Scope:
    return Scope(_tenant(caller), acting_owner(caller, owner), services.contact_groups)


InScope = Annotated[Scope, Depends(_scope)]


def _read(group: ContactGroup) -> GroupRead:
    return GroupRead(**group_json(group))


@router.get("", summary="List contact groups, with member counts")
async def list_groups(
    scope: InScope,
    kind: Kind | None = Query(None, description="Only groups of this kind"),
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> GroupPage:
    found = await scope.groups.list(scope.tenant_id, owner=scope.owner, kind=kind, cursor=cursor, limit=limit)
    return GroupPage(items=[_read(g) for g in found.items], next_cursor=found.next_cursor)


@router.post(
    "",
    status_code=201,
    summary="Create a group (filled by hand, or by a rule applied at once)",
    responses=error_responses(409),
)
async def create_group(
    body: GroupCreate, caller: Caller = Depends(require_tenant), services: Services = Depends(get_services)
) -> GroupRead:
    group = await services.contact_groups.create(
        _tenant(caller),
        name=body.name,
        description=body.description,
        rule=body.rule.rule() if body.rule is not None else None,
        owner=acting_owner(caller, body.owner),
    )
    return _read(group)


@router.get("/{group_id}", summary="Get a group", responses=error_responses(404))
async def get_group(group_id: str, scope: InScope) -> GroupRead:
    return _read(await scope.groups.get(scope.tenant_id, group_id, owner=scope.owner))


@router.patch(
    "/{group_id}",
    summary="Change a group's name, description or rule (a new rule is applied at once)",
    responses=error_responses(404, 409),
)
async def update_group(group_id: str, body: GroupUpdate, scope: InScope) -> GroupRead:
    changes: dict[str, Any] = {name: getattr(body, name) for name in body.model_fields_set}
    if "rule" in changes:
        changes["rule"] = body.rule.rule() if body.rule is not None else None
    return _read(await scope.groups.update(scope.tenant_id, group_id, changes, owner=scope.owner))


@router.delete(
    "/{group_id}",
    status_code=204,
    summary="Delete a group (not its contacts)",
    responses=error_responses(404),
)
async def delete_group(group_id: str, scope: InScope) -> Response:
    await scope.groups.delete(scope.tenant_id, group_id, owner=scope.owner)
    return Response(status_code=204)


@router.get("/{group_id}/members", summary="List a group's members", responses=error_responses(404))
async def list_members(
    group_id: str, scope: InScope, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT
) -> MemberPage:
    found = await scope.groups.members(
        scope.tenant_id, group_id, owner=scope.owner, cursor=cursor, limit=limit
    )
    now = utc_now()
    items = [
        {
            **contact_json(m.contact, now=now),
            "membership": {"source": m.source, "added_at": m.added_at.isoformat()},
        }
        for m in found.items
    ]
    return MemberPage(items=items, next_cursor=found.next_cursor)


@router.post(
    "/{group_id}/members",
    summary="Add contacts to a group by hand",
    responses=error_responses(404, 409),
)
async def add_members(group_id: str, body: MembersAdd, scope: InScope) -> GroupRead:
    return _read(await scope.groups.add_members(scope.tenant_id, group_id, body.contacts, owner=scope.owner))


@router.delete(
    "/{group_id}/members/{contact_id}",
    status_code=204,
    summary="Take a contact out of a group (a rule does not add it back)",
    responses=error_responses(404, 409),
)
async def remove_member(group_id: str, contact_id: str, scope: InScope) -> Response:
    await scope.groups.remove_member(scope.tenant_id, group_id, contact_id, owner=scope.owner)
    return Response(status_code=204)
