"""``GET /v1/contacts/export`` (CSV read back with :mod:`csv`, vCard 4.0 with ``vobject``) and the
tenant's block list, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import httpx
import vobject
from sqlalchemy import select

from mailport.bootstrap import Services
from mailport.contacts.blocklist import load_blocklist
from mailport.contacts.export import MULTI_VALUE_SEPARATOR, contact_uid
from mailport.contacts.queries import ContactQuery, Sort
from mailport.contacts.rules import BlockList
from mailport.contacts.service import ContactService
from mailport.store.tables import contact_exclusions
from tests.fixtures.api import NewTenantClient, TenantHandle
from tests.integration.contacts.test_api import T0, add_group, mailbox, received, seed, sent


async def _contacts(services: Services, tenant: TenantHandle, client: httpx.AsyncClient) -> list[dict]:
    box = await mailbox(services, tenant.id)
    await seed(
        services,
        box,
        received(box, '"Müller, Jörg; \\"JM\\" Sr." <joerg@firma.example>', 3)
        + sent(box, "=cmd <calc@evil.example>", 1, at=T0 + timedelta(days=1))
        + received(box, "Ann <ann@firma.example>", 1, at=T0 - timedelta(days=3)),
    )
    ids = {item["email"]: item["id"] for item in (await client.get("/v1/contacts")).json()["items"]}
    await client.post(
        "/v1/contacts/merge", json={"into": ids["ann@firma.example"], "from": [ids["calc@evil.example"]]}
    )
    await client.post("/v1/contacts", json={"email": "solo@example.com"})
    await add_group(
        services, tenant.id, "Kunden, A-Z", [ids["joerg@firma.example"], ids["ann@firma.example"]]
    )
    await add_group(services, tenant.id, "VIP", [ids["joerg@firma.example"]])
    listed = (await client.get("/v1/contacts")).json()["items"]
    assert len(listed) == 3
    return listed


def raw(cell: str) -> str:
    """A CSV cell as written before the formula guard (docs of mailport.contacts.export)."""
    return cell[1:] if cell.startswith("'") and cell[1:2] in ("=", "+", "-", "@", "\t", "\r") else cell


async def test_csv_export_round_trips_through_a_csv_reader(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient
) -> None:
    listed = await _contacts(services, tenant, tenant_client)
    response = await tenant_client.get("/v1/contacts/export", params={"format": "csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="contacts.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"), newline="")))
    assert [row["primary_email"] for row in rows] == [item["email"] for item in listed]  # the list's order
    groups = {"joerg@firma.example": ["Kunden, A-Z", "VIP"], "ann@firma.example": ["Kunden, A-Z"]}
    for row, item in zip(rows, listed, strict=True):
        assert raw(row["display_name"]) == (item["name"] or "")
        assert [
            row["primary_email"],
            *filter(None, row["other_emails"].split(MULTI_VALUE_SEPARATOR)),
        ] == item["emails"]
        assert row["organisation"] == (item["organisation"] or "")
        assert list(filter(None, row["groups"].split(MULTI_VALUE_SEPARATOR))) == groups.get(item["email"], [])
        assert (int(row["sent_to"]), int(row["received_from"])) == (item["sent_to"], item["received_from"])
        assert row["two_way"] == ("true" if item["two_way"] else "false")
        assert abs(float(row["score"]) - item["score"]) < 0.01
        if item["last_seen"]:
            assert row["last_seen"] == item["last_seen"].replace("+00:00", "Z")
    names = {row["primary_email"]: row["display_name"] for row in rows}
    assert names["joerg@firma.example"] == 'Müller, Jörg; "JM" Sr.'
    assert names["ann@firma.example"] == "'=cmd"  # the most frequent name, a formula, is defused

    only = await tenant_client.get("/v1/contacts/export", params={"q": "solo", "sort": "name"})
    assert [r["primary_email"] for r in csv.DictReader(io.StringIO(only.text))] == ["solo@example.com"]
    none = await tenant_client.get("/v1/contacts/export", params={"domain": "nothing.example"})
    assert none.text.splitlines() == [
        ",".join(next(csv.reader(io.StringIO(response.text))))
    ]  # the header only


async def test_vcard_export_round_trips_through_vobject(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient
) -> None:
    listed = await _contacts(services, tenant, tenant_client)
    response = await tenant_client.get(
        "/v1/contacts/export", params={"format": "vcard", "domain": "firma.example"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/vcard; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="contacts.vcf"'
    cards = list(vobject.readComponents(response.content.decode("utf-8")))
    expected = [item for item in listed if item["organisation"] == "firma.example"]
    assert len(cards) == len(expected) == 2
    for card, item in zip(cards, expected, strict=True):
        assert card.version.value == "4.0"
        assert card.fn.value == (item["name"] or item["email"])
        assert [line.value for line in card.contents["email"]] == item["emails"]
        assert card.uid.value == contact_uid(item["id"])
        assert card.org.value == [item["organisation"]]
    categories = {card.contents["email"][0].value: card.categories.value for card in cards}
    assert categories == {"joerg@firma.example": ["Kunden, A-Z", "VIP"], "ann@firma.example": ["Kunden, A-Z"]}

    empty = await tenant_client.get("/v1/contacts/export", params={"format": "vcard", "q": "nobody-here"})
    assert empty.status_code == 200 and empty.content == b""
    for params, code in (
        ({"format": "pdf"}, "invalid_input"),
        ({"domain": "localhost"}, "invalid_input"),
        ({"group": "cg_nothere"}, "contact_group_not_found"),
    ):
        refused = await tenant_client.get("/v1/contacts/export", params=params)
        assert refused.status_code in (404, 422) and refused.json()["error"] == code, (params, refused.text)


async def test_an_export_reads_page_after_page_in_the_lists_order(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient
) -> None:
    box = await mailbox(services, tenant.id)
    await seed(
        services,
        box,
        [mail for n in range(7) for mail in received(box, f"P{n} <p{n}@people.example>", n % 3 + 1)],
    )
    await tenant_client.post("/v1/contacts", json={"email": "never@people.example", "name": "P9"})
    small = ContactService(services.events, export_chunk=2)  # four reads for eight contacts
    sorts: tuple[Sort, ...] = ("score", "name", "last_seen")
    for sort in sorts:
        query = ContactQuery(sort=sort, domain="people.example")
        text = "".join([chunk async for chunk in small.export(tenant.id, "csv", query)])
        exported = [row["primary_email"] for row in csv.DictReader(io.StringIO(text))]
        listed = await tenant_client.get("/v1/contacts", params={"sort": sort, "domain": "people.example"})
        assert exported == [item["email"] for item in listed.json()["items"]], sort
        assert len(exported) == 8
    vcf = "".join([chunk async for chunk in small.export(tenant.id, "vcard", ContactQuery(q="p1"))])
    assert [c.fn.value for c in vobject.readComponents(vcf)] == ["P1"]


# ---------------------------------------------------------------------------- the block list


async def test_block_list_is_kept_canonical_and_used_by_the_harvest(
    services: Services,
    tenant: TenantHandle,
    tenant_client: httpx.AsyncClient,
    new_tenant_client: NewTenantClient,
) -> None:
    assert (await tenant_client.get("/v1/contacts/blocklist")).json() == {"addresses": [], "domains": []}
    put = await tenant_client.put(
        "/v1/contacts/blocklist",
        json={
            "addresses": ["J.Doe+x@GoogleMail.com", "boss@corp.example"],
            "domains": ["Bücher.example", "@ads.example"],
        },
    )
    assert put.status_code == 200, put.text
    assert put.json() == {
        "addresses": ["boss@corp.example", "jdoe@gmail.com"],
        "domains": ["ads.example", "xn--bcher-kva.example"],
    }
    added = await tenant_client.post("/v1/contacts/blocklist", json={"domain": "Spam.Example"})
    assert added.json()["domains"] == ["ads.example", "spam.example", "xn--bcher-kva.example"]
    again = await tenant_client.post("/v1/contacts/blocklist", json={"domain": "spam.example"})
    assert again.json() == added.json()
    removed = await tenant_client.delete("/v1/contacts/blocklist", params={"address": "BOSS@corp.example"})
    assert removed.json()["addresses"] == ["jdoe@gmail.com"]

    for method, kwargs, field in (
        ("PUT", {"json": {"addresses": ["not-an-address"]}}, "addresses"),
        ("PUT", {"json": {"domains": ["localhost"]}}, "domains"),
        ("POST", {"json": {"address": "a@b.example", "domain": "b.example"}}, None),
        ("POST", {"json": {}}, None),
        ("POST", {"json": {"domain": "-bad-.example"}}, "domain"),
        ("DELETE", {"params": {}}, "address"),
    ):
        response = await tenant_client.request(method, "/v1/contacts/blocklist", **kwargs)
        assert response.status_code == 422, (method, kwargs, response.text)
        if field:
            assert response.json().get("field") == field, response.text
    assert (await tenant_client.get("/v1/contacts/blocklist")).json() == removed.json()  # nothing half-done

    async with services.database.connect() as conn:
        assert await load_blocklist(conn, tenant.id) == BlockList(
            frozenset({"jdoe@gmail.com"}), frozenset({"ads.example", "spam.example", "xn--bcher-kva.example"})
        )
    box = await mailbox(services, tenant.id)
    done = await seed(
        services,
        box,
        received(box, "jdoe@gmail.com")
        + received(box, "x@mail.spam.example")
        + received(box, "ok@fine.example"),
    )
    assert len(done.created) == 1  # the blocked ones are left out, with their reason
    async with services.database.connect() as conn:
        reasons = {
            (r.key, r.reason)
            for r in await conn.execute(
                select(contact_exclusions).where(contact_exclusions.c.mailbox_id == box.id)
            )
        }
    assert {("jdoe@gmail.com", "blocked_address"), ("x@mail.spam.example", "blocked_domain")} <= reasons
    why = (
        await tenant_client.get("/v1/contacts/exclusions", params={"address": "x@mail.spam.example"})
    ).json()
    assert why["rule"] == "blocked_domain" and why["exclusions"][0]["reason"] == "blocked_domain"

    _other, intruder = await new_tenant_client()  # the block list is the tenant's own
    assert (await intruder.get("/v1/contacts/blocklist")).json() == {"addresses": [], "domains": []}
    await intruder.put("/v1/contacts/blocklist", json={"domains": ["fine.example"]})
    assert (await tenant_client.get("/v1/contacts/blocklist")).json() == removed.json()
    mine = (await tenant_client.get("/v1/contacts/exclusions", params={"address": "ok@fine.example"})).json()
    assert mine["rule"] is None and len(mine["contacts"]) == 1
