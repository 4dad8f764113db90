"""Every ``/v1/contacts`` route keeps tenants apart, and with ``owner`` owners apart: another
tenant's or another owner's contact is 404 ``contact_not_found``; lists, exports and histories
show only the caller's book(s); contacts of two books never merge."""

from __future__ import annotations

import csv
import io

import httpx

from mailport.bootstrap import Services
from tests.fixtures.api import NewTenantClient, TenantHandle
from tests.integration.contacts.test_api import add_group, ids_by_email, mailbox, received, seed, sent


async def _attempts(
    client: httpx.AsyncClient, contact_id: str, other_id: str, **params: str
) -> dict[str, httpx.Response]:
    """Every route that names a contact, aimed at ``contact_id``."""
    url = f"/v1/contacts/{contact_id}"
    return {
        "GET": await client.get(url, params=params),
        "PATCH": await client.patch(url, json={"name": "pwned"}, params=params),
        "history": await client.get(f"{url}/history", params=params),
        "merge into": await client.post(
            "/v1/contacts/merge", json={"into": contact_id, "from": [other_id]}, params=params
        ),
        "merge from": await client.post(
            "/v1/contacts/merge", json={"into": other_id, "from": [contact_id]}, params=params
        ),
        "DELETE": await client.delete(url, params=params),
    }


async def test_another_tenant_sees_nothing_of_the_contacts(
    services: Services,
    tenant: TenantHandle,
    tenant_client: httpx.AsyncClient,
    new_tenant_client: NewTenantClient,
) -> None:
    box = await mailbox(services, tenant.id)
    await seed(
        services,
        box,
        received(box, "Secret Person <secret@target.example>", 2) + sent(box, "x@target.example"),
    )
    mine = await ids_by_email(tenant_client)
    secret = mine["secret@target.example"]
    group = await add_group(services, tenant.id, "Targets", [secret])
    before = (await tenant_client.get(f"/v1/contacts/{secret}")).json()

    other, intruder = await new_tenant_client()
    theirs = (
        await intruder.post("/v1/contacts", json={"email": "secret@target.example"})
    ).json()  # free there
    assert theirs["id"] != secret
    for route, response in (await _attempts(intruder, secret, theirs["id"])).items():
        assert response.status_code == 404, (route, response.text)
        assert response.json()["error"] == "contact_not_found" and "target.example" not in response.text
    listed = (await intruder.get("/v1/contacts", params={"q": "target"})).json()
    assert [item["id"] for item in listed["items"]] == [theirs["id"]]
    grouped = await intruder.get("/v1/contacts", params={"group": group})
    assert grouped.status_code == 404 and grouped.json()["error"] == "contact_group_not_found"
    assert (await intruder.get("/v1/contacts/export", params={"group": group})).status_code == 404
    exported = await intruder.get("/v1/contacts/export")
    assert [r["primary_email"] for r in csv.DictReader(io.StringIO(exported.text))] == [
        "secret@target.example"
    ]
    assert "Secret Person" not in exported.text
    vcf = await intruder.get("/v1/contacts/export", params={"format": "vcard"})
    assert "Secret Person" not in vcf.text and secret not in vcf.text
    why = (await intruder.get("/v1/contacts/exclusions", params={"address": box.email})).json()
    assert why["exclusions"] == [] and why["contacts"] == []  # our mailbox's own address stays ours
    probe = (
        await intruder.get("/v1/contacts/exclusions", params={"address": "secret@target.example"})
    ).json()
    assert [c["id"] for c in probe["contacts"]] == [theirs["id"]]

    # our contact is untouched, and theirs is theirs
    assert (await tenant_client.get(f"/v1/contacts/{secret}")).json() == {**before, "score": before["score"]}
    assert (await tenant_client.get(f"/v1/contacts/{theirs['id']}")).status_code == 404
    cross = await tenant_client.post("/v1/contacts/merge", json={"into": secret, "from": [theirs["id"]]})
    assert cross.status_code == 404
    assert other.id != tenant.id


async def test_owners_books_stay_apart(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient
) -> None:
    alice_box = await mailbox(services, tenant.id, owner="alice")
    bob_box = await mailbox(services, tenant.id, owner="bob")
    shared_box = await mailbox(services, tenant.id)
    for box in (alice_box, bob_box, shared_box):  # one address, three books: three contacts
        await seed(
            services,
            box,
            received(box, "Pat <pat@client.example>", 1) + received(box, f"only-{box.id}@x.example"),
        )
    alice = await ids_by_email(tenant_client, owner="alice")
    bob = await ids_by_email(tenant_client, owner="bob")
    unowned = await ids_by_email(tenant_client, owner="")
    assert set(alice) == {"pat@client.example", f"only-{alice_box.id}@x.example"}
    assert set(bob) == {"pat@client.example", f"only-{bob_box.id}@x.example"}
    assert set(unowned) == {"pat@client.example", f"only-{shared_box.id}@x.example"}
    everything = (await tenant_client.get("/v1/contacts", params={"limit": 200})).json()["items"]
    assert len(everything) == 6 and {i["owner"] for i in everything} == {"alice", "bob", None}

    alices_pat, bobs_pat = alice["pat@client.example"], bob["pat@client.example"]
    for route, response in (await _attempts(tenant_client, alices_pat, bobs_pat, owner="bob")).items():
        assert response.status_code == 404, (route, response.text)
        assert response.json()["error"] == "contact_not_found"
    assert (
        await tenant_client.get(f"/v1/contacts/{alices_pat}", params={"owner": "alice"})
    ).status_code == 200
    assert (await tenant_client.get(f"/v1/contacts/{alices_pat}", params={"owner": ""})).status_code == 404

    mixed = await tenant_client.post("/v1/contacts/merge", json={"into": alices_pat, "from": [bobs_pat]})
    assert mixed.status_code == 409 and mixed.json()["error"] == "contact_book_mismatch"
    assert (await tenant_client.get(f"/v1/contacts/{bobs_pat}")).status_code == 200  # nothing merged

    history = (await tenant_client.get(f"/v1/contacts/{alices_pat}/history")).json()
    assert [s["mailbox_id"] for s in history["sources"]] == [alice_box.id]  # not bob's mailbox
    why = (
        await tenant_client.get(
            "/v1/contacts/exclusions", params={"address": bob_box.email, "owner": "alice"}
        )
    ).json()
    assert why["exclusions"] == []
    whose = (
        await tenant_client.get(
            "/v1/contacts/exclusions", params={"address": "pat@client.example", "owner": "bob"}
        )
    ).json()
    assert [c["id"] for c in whose["contacts"]] == [bobs_pat]

    exported = await tenant_client.get("/v1/contacts/export", params={"owner": "alice"})
    assert {r["primary_email"] for r in csv.DictReader(io.StringIO(exported.text))} == set(alice)
    bobs_group = await add_group(services, tenant.id, "Bob's", [bobs_pat], owner="bob")
    refused = await tenant_client.get("/v1/contacts", params={"group": bobs_group, "owner": "alice"})
    assert refused.status_code == 404 and refused.json()["error"] == "contact_group_not_found"

    made = await tenant_client.post("/v1/contacts", json={"email": "pat@client.example", "owner": "carol"})
    assert made.status_code == 201 and made.json()["owner"] == "carol"  # a fourth book
    assert (
        await tenant_client.post("/v1/contacts", json={"email": "pat@client.example", "owner": "bob"})
    ).status_code == 409

    # deleting in one book leaves the others' contacts and harvests alone
    assert (await tenant_client.delete(f"/v1/contacts/{alices_pat}")).status_code == 204
    await seed(services, bob_box, received(bob_box, "Pat <pat@client.example>"))
    assert (await tenant_client.get(f"/v1/contacts/{bobs_pat}")).json()["received_from"] == 2
    await seed(services, alice_box, received(alice_box, "Pat <pat@client.example>"))
    assert "pat@client.example" not in await ids_by_email(tenant_client, owner="alice")
