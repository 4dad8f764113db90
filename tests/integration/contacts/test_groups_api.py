"""``/v1/contacts/groups`` over HTTP on SQLite and PostgreSQL: CRUD, membership, validation,
tenant and owner isolation. (Every request here would meet the contacts router's
``/v1/contacts/{id}`` if the groups router were not registered first.)"""

from __future__ import annotations

import httpx

from mailport.contacts.models import Book
from mailport.services import Services
from tests.fixtures.api import NewTenantClient, TenantHandle
from tests.integration.contacts.test_groups import harvest_into, mailbox, received, sent

GROUPS = "/v1/contacts/groups"


async def _contacts(services: Services, tenant_id: str, owner: str | None = None) -> dict[str, str]:
    """A harvested book of ``tenant_id``: Alice (acme, two-way), Bob (acme), Carol (free mail)."""
    mailbox_id = await mailbox(services, tenant_id, owner)
    return await harvest_into(
        services,
        Book.of(tenant_id, owner),
        mailbox_id,
        received("Alice <alice@acme.com>"),
        sent("alice@acme.com"),
        received("bob@acme.com"),
        received("carol@gmail.com"),
    )


def _error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body: dict[str, object] = response.json()
    assert body["error"] == code and body["detail"] and body["hint"], body
    return body


async def test_groups_are_created_listed_changed_and_deleted(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient
) -> None:
    ids = await _contacts(services, tenant.id)
    created = await tenant_client.post(
        GROUPS, json={"name": "Acme people", "description": "both ways", "rule": {"domains": ["Acme.com"]}}
    )
    assert created.status_code == 201, created.text
    group = created.json()
    assert group["id"].startswith("cg_") and group["kind"] == "custom" and group["owner"] is None
    assert group["rule"] == {"domains": ["acme.com"]} and group["members"] == 2
    _error(await tenant_client.post(GROUPS, json={"name": "Acme people"}), 409, "contact_group_exists")

    listed = (await tenant_client.get(GROUPS)).json()
    by_name = {g["name"]: g for g in listed["items"]}
    assert set(by_name) == {"Acme people", "acme.com"} and listed["next_cursor"] is None
    assert by_name["acme.com"]["kind"] == "organisation" and by_name["acme.com"]["members"] == 2
    only = (await tenant_client.get(GROUPS, params={"kind": "organisation"})).json()["items"]
    assert [g["name"] for g in only] == ["acme.com"]
    first = (await tenant_client.get(GROUPS, params={"limit": 1})).json()
    second = (await tenant_client.get(GROUPS, params={"limit": 1, "cursor": first["next_cursor"]})).json()
    assert {first["items"][0]["id"], second["items"][0]["id"]} == {g["id"] for g in listed["items"]}

    changed = await tenant_client.patch(
        f"{GROUPS}/{group['id']}",
        json={"name": "Acme, two-way", "rule": {"domains": ["acme.com"], "two_way": True}},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["members"] == 1 and changed.json()["description"] == "both ways"
    members = (await tenant_client.get(f"{GROUPS}/{group['id']}/members")).json()
    assert [m["id"] for m in members["items"]] == [ids["alice@acme.com"]]
    assert members["items"][0]["email"] == "alice@acme.com" and members["items"][0]["two_way"] is True
    assert members["items"][0]["membership"]["source"] == "rule"
    assert (await tenant_client.get(f"{GROUPS}/{group['id']}")).json()["name"] == "Acme, two-way"

    assert (await tenant_client.delete(f"{GROUPS}/{group['id']}")).status_code == 204
    _error(await tenant_client.get(f"{GROUPS}/{group['id']}"), 404, "contact_group_not_found")
    _error(await tenant_client.delete(f"{GROUPS}/{group['id']}"), 404, "contact_group_not_found")


async def test_members_are_added_and_removed_by_hand(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient
) -> None:
    ids = await _contacts(services, tenant.id)
    group = (await tenant_client.post(GROUPS, json={"name": "Friends"})).json()
    url = f"{GROUPS}/{group['id']}/members"
    added = await tenant_client.post(url, json={"contacts": [ids["carol@gmail.com"], ids["bob@acme.com"]]})
    assert added.status_code == 200, added.text
    assert added.json()["members"] == 2
    page = (await tenant_client.get(url, params={"limit": 1})).json()
    rest = (await tenant_client.get(url, params={"limit": 1, "cursor": page["next_cursor"]})).json()
    assert {page["items"][0]["id"], rest["items"][0]["id"]} == {ids["carol@gmail.com"], ids["bob@acme.com"]}
    assert rest["next_cursor"] is None and page["items"][0]["membership"]["source"] == "manual"

    missing = await tenant_client.post(url, json={"contacts": ["ct_00000000000000000000000000"]})
    assert "ct_00000000000000000000000000" in str(_error(missing, 404, "contact_not_found")["detail"])
    _error(await tenant_client.post(url, json={"contacts": ["not an id"]}), 404, "contact_not_found")
    assert (await tenant_client.delete(f"{url}/{ids['bob@acme.com']}")).status_code == 204
    left = (await tenant_client.get(url)).json()["items"]
    assert [m["email"] for m in left] == ["carol@gmail.com"]
    _error(await tenant_client.delete(f"{url}/ct_00000000000000000000000000"), 404, "contact_not_found")
    _error(
        await tenant_client.get(f"{GROUPS}/cg_00000000000000000000000000/members"),
        404,
        "contact_group_not_found",
    )

    organisation = (await tenant_client.get(GROUPS, params={"kind": "organisation"})).json()["items"][0]
    renamed = await tenant_client.patch(f"{GROUPS}/{organisation['id']}", json={"name": "Acme"})
    assert _error(renamed, 422, "invalid_input")["field"] == "name"
    described = await tenant_client.patch(f"{GROUPS}/{organisation['id']}", json={"description": "customer"})
    assert described.status_code == 200 and described.json()["description"] == "customer"
    assert (
        await tenant_client.delete(f"{GROUPS}/{organisation['id']}/members/{ids['alice@acme.com']}")
    ).status_code == 204
    assert (await tenant_client.get(f"{GROUPS}/{organisation['id']}")).json()["members"] == 1


async def test_bad_rules_and_bodies_are_refused_with_a_reason(tenant_client: httpx.AsyncClient) -> None:
    unknown = await tenant_client.post(GROUPS, json={"name": "x", "rule": {"domain": ["acme.com"]}})
    assert _error(unknown, 422, "unknown_field")["field"] == "rule.domain"
    empty = _error(await tenant_client.post(GROUPS, json={"name": "x", "rule": {}}), 422, "invalid_input")
    assert empty["field"] == "rule" and "at least one condition" in str(empty["detail"])
    for bad in ({"domains": ["acme .com"]}, {"domains": []}, {"two_way": "yes"}, {"min_messages": 0}):
        refused = _error(
            await tenant_client.post(GROUPS, json={"name": "x", "rule": bad}), 422, "invalid_input"
        )
        assert str(refused["field"]).startswith("rule"), refused
    _error(await tenant_client.post(GROUPS, json={"name": "x", "rule": ["acme.com"]}), 422, "invalid_input")
    _error(await tenant_client.post(GROUPS, json={"name": " "}), 422, "invalid_input")
    _error(await tenant_client.post(GROUPS, json={"name": "a\nb"}), 422, "invalid_input")
    _error(await tenant_client.post(GROUPS, json={"name": "x", "colour": "red"}), 422, "unknown_field")
    group = (await tenant_client.post(GROUPS, json={"name": "x"})).json()
    _error(await tenant_client.patch(f"{GROUPS}/{group['id']}", json={"name": None}), 422, "invalid_input")
    bad_kind = await tenant_client.get(GROUPS, params={"kind": "smart"})
    _error(bad_kind, 422, "invalid_input")
    _error(
        await tenant_client.post(f"{GROUPS}/{group['id']}/members", json={"contacts": []}),
        422,
        "invalid_input",
    )


async def test_tenants_and_owners_are_isolated(
    services: Services,
    tenant: TenantHandle,
    tenant_client: httpx.AsyncClient,
    new_tenant_client: NewTenantClient,
) -> None:
    mine = await _contacts(services, tenant.id, "user-1")
    theirs_book = await _contacts(services, tenant.id, "user-2")
    group = (await tenant_client.post(GROUPS, json={"name": "Team", "owner": "user-1"})).json()
    assert group["owner"] == "user-1"
    url = f"{GROUPS}/{group['id']}"
    mismatch = await tenant_client.post(f"{url}/members", json={"contacts": [theirs_book["bob@acme.com"]]})
    _error(mismatch, 409, "contact_book_mismatch")
    _error(
        await tenant_client.delete(f"{url}/members/{theirs_book['bob@acme.com']}"),
        409,
        "contact_book_mismatch",
    )
    assert (
        await tenant_client.post(f"{url}/members", json={"contacts": [mine["bob@acme.com"]]})
    ).status_code == 200

    # the owner filter: another owner's group is not found, the unowned book holds none of these
    _error(await tenant_client.get(url, params={"owner": "user-2"}), 404, "contact_group_not_found")
    _error(
        await tenant_client.get(f"{url}/members", params={"owner": "user-2"}), 404, "contact_group_not_found"
    )
    _error(
        await tenant_client.patch(url, params={"owner": "user-2"}, json={"description": "x"}),
        404,
        "contact_group_not_found",
    )
    _error(await tenant_client.delete(url, params={"owner": "user-2"}), 404, "contact_group_not_found")
    assert (await tenant_client.get(url, params={"owner": "user-1"})).json()["members"] == 1
    assert (await tenant_client.get(GROUPS, params={"owner": ""})).json()["items"] == []
    user_2 = (await tenant_client.get(GROUPS, params={"owner": "user-2"})).json()["items"]
    assert [(g["name"], g["owner"]) for g in user_2] == [("acme.com", "user-2")]
    other_owner_contact = await tenant_client.post(
        f"{url}/members", params={"owner": "user-1"}, json={"contacts": [theirs_book["alice@acme.com"]]}
    )
    _error(other_owner_contact, 404, "contact_not_found")

    other, other_client = await new_tenant_client()
    foreign = await _contacts(services, other.id, "user-1")
    assert (await other_client.get(GROUPS)).json()["items"][0]["name"] == "acme.com"  # its own only
    assert len((await other_client.get(GROUPS)).json()["items"]) == 1
    _error(await other_client.get(url), 404, "contact_group_not_found")
    _error(await other_client.patch(url, json={"name": "mine"}), 404, "contact_group_not_found")
    _error(await other_client.delete(url), 404, "contact_group_not_found")
    _error(await other_client.get(f"{url}/members"), 404, "contact_group_not_found")
    _error(
        await other_client.post(f"{url}/members", json={"contacts": [foreign["bob@acme.com"]]}),
        404,
        "contact_group_not_found",
    )
    _error(await other_client.delete(f"{url}/members/{mine['bob@acme.com']}"), 404, "contact_group_not_found")
    # nor may the group take the other tenant's contact
    _error(
        await tenant_client.post(f"{url}/members", json={"contacts": [foreign["bob@acme.com"]]}),
        404,
        "contact_not_found",
    )
    assert (await tenant_client.get(url)).json()["members"] == 1
