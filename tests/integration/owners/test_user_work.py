"""A user's token does its user's everyday work, and the tenant key still sees every user's."""

from __future__ import annotations

import httpx

from tests.integration.owners.conftest import World


def ids(answer: httpx.Response, key: str = "items") -> set[str]:
    assert answer.status_code == 200, answer.text
    return {item["id"] for item in answer.json()[key]}


async def test_a_users_token_does_its_users_work(world: World) -> None:
    bob = world.bob
    assert ids(await bob.client.get("/v1/mailboxes")) == {bob.mailbox["id"]}
    assert (await bob.client.get(bob.base)).json()["owner"] == "bob"

    read = await bob.client.get(f"{bob.base}/messages/{bob.message['ref']}")
    assert read.status_code == 200 and read.json()["subject"].startswith("bob message"), read.text
    raw = await bob.client.get(f"{bob.base}/messages/{bob.message['ref']}/raw")
    assert raw.status_code == 200 and b"Subject: bob message" in raw.content
    found = await bob.client.post(f"{bob.base}/messages/search", json={"subject": "bob message"})
    assert found.status_code == 200 and len(found.json()["data"]) == 2, found.text

    events = await bob.client.get("/v1/events", params={"mailbox_id": bob.mailbox["id"]})
    assert [e["id"] for e in events.json()["items"]] == [bob.event_id]
    unscoped = await bob.client.get("/v1/events")
    assert unscoped.status_code == 422 and unscoped.json()["field"] == "mailbox_id", unscoped.text
    consumers = (await bob.client.get("/v1/events/consumers")).json()["items"]
    assert "crm" in {c["name"] for c in consumers}
    assert {c["mailbox_id"] for c in consumers} == {bob.mailbox["id"]}

    assert ids(await bob.client.get("/v1/contacts")) == {bob.contact["id"]}
    assert bob.contact["owner"] == "bob"  # added without naming an owner: the token's user's book
    own_book = await bob.client.get("/v1/contacts", params={"owner": "bob"})
    assert ids(own_book) == {bob.contact["id"]}
    groups = (await bob.client.get("/v1/contacts/groups")).json()["items"]  # with its organisation group
    assert bob.group["id"] in {g["id"] for g in groups} and {g["owner"] for g in groups} == {"bob"}
    members = await bob.client.get(f"/v1/contacts/groups/{bob.group['id']}/members")
    assert ids(members) == {bob.contact["id"]}

    # alice's contact is not in bob's reach, even through bob's own group or a merge into his own
    mixed = await bob.client.post(
        f"/v1/contacts/groups/{bob.group['id']}/members", json={"contacts": [world.alice.contact["id"]]}
    )
    assert mixed.status_code == 404 and mixed.json()["error"] == "contact_not_found", mixed.text
    merged = await bob.client.post(
        "/v1/contacts/merge", json={"into": bob.contact["id"], "from": [world.alice.contact["id"]]}
    )
    assert merged.status_code == 404 and merged.json()["error"] == "contact_not_found", merged.text

    health = (await bob.client.get("/v1/health")).json()
    assert [m["mailbox_id"] for m in health["items"]] == [bob.mailbox["id"]]

    # keeping the mailbox is fine; giving it away (to alice, or back to the tenant) is not
    kept = await bob.client.patch(bob.base, json={"owner": "bob", "label": "Bob's"})
    assert kept.status_code == 200 and kept.json()["label"] == "Bob's", kept.text
    for owner in ("alice", None, ""):
        moved = await bob.client.patch(bob.base, json={"owner": owner})
        assert moved.status_code == 403 and moved.json()["error"] == "owner_forbidden", moved.text
    assert (await bob.client.get(bob.base)).json()["owner"] == "bob"
    foreign_book = await bob.client.get("/v1/contacts", params={"owner": "alice"})
    assert foreign_book.status_code == 403 and foreign_book.json()["error"] == "owner_forbidden"

    link = await bob.client.post("/v1/connect-links", json={"purpose": "crm"})
    assert link.status_code == 201 and link.json()["owner"] == "bob", link.text

    # an address another user's mailbox has: 409, without naming that mailbox
    taken = await bob.client.post(
        "/v1/mailboxes",
        json={"email": world.alice.mailbox["email"], "auth_method": "oauth2", "connector": "gmail_api"},
    )
    assert taken.status_code == 409 and world.alice.mailbox["id"] not in taken.text, taken.text


async def test_the_tenant_key_still_sees_every_user(world: World) -> None:
    tenant, alice, bob = world.tenant_client, world.alice, world.bob
    everyone = {alice.mailbox["id"], bob.mailbox["id"]}
    assert ids(await tenant.get("/v1/mailboxes")) == everyone
    assert world.other_tenant_alice.mailbox["id"] not in ids(await tenant.get("/v1/mailboxes"))
    assert ids(await tenant.get("/v1/contacts")) >= {alice.contact["id"], bob.contact["id"]}
    assert ids(await tenant.get("/v1/contacts", params={"owner": "alice"})) == {alice.contact["id"]}
    assert ids(await tenant.get("/v1/contacts/groups")) >= {alice.group["id"], bob.group["id"]}
    events = await tenant.get("/v1/events")
    assert {alice.event_id, bob.event_id} <= ids(events)
    consumers = (await tenant.get("/v1/events/consumers")).json()["items"]
    assert {c["mailbox_id"] for c in consumers} == everyone | {None}  # None: the tenant's own reader
    health = (await tenant.get("/v1/health")).json()
    assert {m["mailbox_id"] for m in health["items"]} == everyone
    assert (await tenant.get("/v1/stats")).status_code == 200
    for user in (alice, bob):
        read = await tenant.get(f"{user.base}/messages/{user.message['ref']}")
        assert read.status_code == 200 and read.json()["subject"].startswith(user.owner), read.text
        assert (await tenant.get(f"/v1/contacts/{user.contact['id']}")).status_code == 200
    # the tenant key moves a mailbox between users; the new owner's token reaches it at once
    moved = await tenant.patch(alice.base, json={"owner": "bob"})
    assert moved.status_code == 200 and moved.json()["owner"] == "bob"
    assert (await bob.client.get(alice.base)).status_code == 200
    assert (await alice.client.get(alice.base)).status_code == 404
