"""``/v1/contacts`` over HTTP on SQLite and PostgreSQL: list, search, sort, page, read, change,
create, delete (and staying deleted), merge, history and exclusions.

Contacts are seeded the way harvesting makes them: real header blocks through
:func:`mailport.contacts.harvest` into :func:`mailport.contacts.store.record`.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from mailport.bootstrap import Services
from mailport.contacts import Identity, harvest
from mailport.contacts.blocklist import load_blocklist
from mailport.contacts.harvest import message_digest
from mailport.contacts.models import Book
from mailport.contacts.store import HarvestedMessage, Recorded, record
from mailport.crypto import Secret
from mailport.mailboxes.models import AuthMethod, Mailbox, NewMailbox, Security, ServerSettings
from mailport.store.tables import contact_group_members, contact_groups, events
from tests.fixtures.api import TenantHandle

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)


def block(sender: str, to: str, *, extra: str = "", cc: str = "") -> bytes:
    """A header block as a server hands it out, with a fresh Message-ID."""
    lines = [f"From: {sender}", f"To: {to}"]
    if cc:
        lines.append(f"Cc: {cc}")
    lines += [f"Message-ID: <{uuid.uuid4().hex}@mail.example.org>", "Subject: hello"]
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


async def mailbox(
    services: Services, tenant_id: str, *, owner: str | None = None, email: str | None = None
) -> Mailbox:
    return await services.mailboxes.create(
        tenant_id,
        NewMailbox(
            email=email or f"me-{uuid.uuid4().hex[:6]}@example.com",
            auth_method=AuthMethod.PASSWORD,
            password=Secret("pw"),
            imap=ServerSettings("imap.example.com", 993, Security.SSL),
            owner=owner,
        ),
    )


async def seed(
    services: Services, box: Mailbox, mail: Sequence[tuple[bytes, datetime]], *, fold: bool = True
) -> Recorded:
    """Harvest ``mail`` (blocks and their dates) of ``box`` as the sync would: its identity, the
    tenant's block list, then the one write path."""
    identity = Identity.of([box.email])
    async with services.database.transaction() as conn:
        blocks = await load_blocklist(conn, box.tenant_id)
        harvested = [
            HarvestedMessage(
                message_digest(raw), harvest(raw, None, at, identity=identity, blocks=blocks, fold=fold)
            )
            for raw, at in mail
        ]
        return await record(conn, Book.of(box.tenant_id, box.owner), box.id, harvested, now=datetime.now(UTC))


def received(box: Mailbox, sender: str, count: int = 1, *, at: datetime = T0) -> list[tuple[bytes, datetime]]:
    return [(block(sender, box.email), at + timedelta(hours=i)) for i in range(count)]


def sent(box: Mailbox, to: str, count: int = 1, *, at: datetime = T0) -> list[tuple[bytes, datetime]]:
    return [(block(box.email, to), at + timedelta(hours=i)) for i in range(count)]


async def ids_by_email(client: httpx.AsyncClient, **params: Any) -> dict[str, str]:
    listed = await client.get("/v1/contacts", params={"limit": 200, **params})
    assert listed.status_code == 200, listed.text
    return {item["email"]: item["id"] for item in listed.json()["items"]}


async def event_payloads(services: Services, kind: str) -> list[dict[str, Any]]:
    async with services.database.connect() as conn:
        rows = await conn.execute(
            select(events.c.payload).where(events.c.type == kind).order_by(events.c.seq)
        )
        return [json.loads(p) if isinstance(p, str) else p for p in rows.scalars()]


async def add_group(
    services: Services, tenant_id: str, name: str, members: Sequence[str], owner: str = ""
) -> str:
    """A group with members, written as the groups feature stores them (its API is not this one's)."""
    group_id = f"cg_{uuid.uuid4().hex[:20]}"
    now = datetime.now(UTC)
    async with services.database.transaction() as conn:
        await conn.execute(
            contact_groups.insert().values(
                id=group_id,
                tenant_id=tenant_id,
                owner=owner,
                name=name,
                kind="custom",
                created_at=now,
                updated_at=now,
            )
        )
        for contact_id in members:
            await conn.execute(
                contact_group_members.insert().values(
                    group_id=group_id, contact_id=contact_id, source="manual", added_at=now
                )
            )
    return group_id


def cursor_of(*parts: Any) -> str:
    """A cursor in this API's shape with any content (base64url JSON)."""
    raw = json.dumps(list(parts)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def walk(client: httpx.AsyncClient, limit: int, **params: Any) -> list[str]:
    """Every contact's email, page by page."""
    found: list[str] = []
    cursor: str | None = None
    while True:
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        page = await client.get("/v1/contacts", params=query)
        assert page.status_code == 200, page.text
        found += [item["email"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return found


# ---------------------------------------------------------------------------- list and search


async def test_list_sorts_by_score_name_and_dates_and_pages_through_every_contact(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient
) -> None:
    box = await mailbox(services, tenant.id)
    await seed(
        services,
        box,
        received(box, '"Zoë Quinn" <zoe@example.org>', 6, at=T0)  # many, one-way
        + sent(box, "Bob <bob@example.net>", 2, at=T0 + timedelta(days=1))  # two-way: the best
        + received(box, "Bob <bob@example.net>", 2, at=T0 + timedelta(days=2))
        + received(box, "anna@old.example", 1, at=T0 - timedelta(days=400))  # long ago
        + received(box, '"carl" <carl@example.org>', 1, at=T0 + timedelta(days=3)),
    )
    made = await tenant_client.post("/v1/contacts", json={"email": "dora@example.com", "name": "Dora"})
    assert made.status_code == 201, made.text

    by_score = await tenant_client.get("/v1/contacts")
    items = by_score.json()["items"]
    assert [i["email"] for i in items] == [
        "bob@example.net",
        "zoe@example.org",
        "carl@example.org",
        "anna@old.example",
        "dora@example.com",
    ]
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True) and scores[-1] == 0.0 and items[0]["two_way"] is True
    assert await walk(tenant_client, 2) == [i["email"] for i in items]

    assert await walk(tenant_client, 2, sort="name") == [
        "anna@old.example",  # no name: by its address
        "bob@example.net",
        "carl@example.org",  # lower case sorts with the rest
        "dora@example.com",
        "zoe@example.org",
    ]
    assert await walk(tenant_client, 1, sort="last_seen") == [
        "carl@example.org",
        "bob@example.net",
        "zoe@example.org",
        "anna@old.example",
        "dora@example.com",  # never seen: last
    ]
    assert (await walk(tenant_client, 3, sort="first_seen"))[:2] == ["carl@example.org", "bob@example.net"]

    first = (await tenant_client.get("/v1/contacts", params={"limit": 2})).json()
    other_sort = await tenant_client.get(
        "/v1/contacts", params={"limit": 2, "sort": "name", "cursor": first["next_cursor"]}
    )
    assert other_sort.status_code == 422 and other_sort.json()["error"] == "invalid_cursor"
    hostile = [
        ("score", "nonsense"),
        ("score", cursor_of()),
        ("score", cursor_of("score", "x", "ct_1")),
        ("score", cursor_of("score", 10**400, "ct_1")),
        ("score", cursor_of("score", float("nan"), "ct_1")),
        ("score", cursor_of("score", 1.0, "ct_1; drop")),
        ("name", cursor_of("name", "a\x00", "ct_1")),
        ("name", cursor_of("name", "\ud800", "ct_1")),
        ("last_seen", cursor_of("last_seen", "2026-01-01T00:00:00", "ct_1")),  # no zone
        ("last_seen", cursor_of("last_seen", 5, "ct_1")),
    ]
    for sort, bad in hostile:
        response = await tenant_client.get("/v1/contacts", params={"cursor": bad, "sort": sort})
        assert response.status_code == 422 and response.json()["error"] == "invalid_cursor", (sort, bad)


async def test_search_by_name_address_domain_group_and_two_way(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient
) -> None:
    box = await mailbox(services, tenant.id)
    await seed(
        services,
        box,
        received(box, '"Jürgen Weiß" <juergen@sales.acme-corp.example>')
        + received(box, "Mia <mia@acme-corp.example>")
        + received(box, "Max <max@notacme-corp.example>")
        + sent(box, "Pat <pat@other.example>")
        + received(box, "Pat <pat@other.example>"),
    )
    ids = await ids_by_email(tenant_client)

    async def emails(**params: Any) -> set[str]:
        response = await tenant_client.get("/v1/contacts", params=params)
        assert response.status_code == 200, response.text
        return {item["email"] for item in response.json()["items"]}

    assert await emails(q="JÜRGEN") == {"juergen@sales.acme-corp.example"}  # names, any case
    assert await emails(q="weiß") == {"juergen@sales.acme-corp.example"}
    assert await emails(q="acme-corp") == {
        "juergen@sales.acme-corp.example",
        "mia@acme-corp.example",
        "max@notacme-corp.example",
    }
    assert await emails(q="100%_") == set()  # LIKE's wildcards are text
    assert await emails(domain="acme-corp.example") == {
        "juergen@sales.acme-corp.example",
        "mia@acme-corp.example",
    }
    assert await emails(domain="ACME-corp.example.") == {
        "juergen@sales.acme-corp.example",
        "mia@acme-corp.example",
    }
    assert await emails(domain="sales.acme-corp.example") == {"juergen@sales.acme-corp.example"}
    assert await emails(two_way="true") == {"pat@other.example"}
    assert len(await emails(two_way="false")) == 3
    group = await add_group(
        services, tenant.id, "Friends", [ids["mia@acme-corp.example"], ids["pat@other.example"]]
    )
    assert await emails(group=group) == {"mia@acme-corp.example", "pat@other.example"}
    assert await emails(group=group, q="pat") == {"pat@other.example"}

    missing = await tenant_client.get("/v1/contacts", params={"group": "cg_nothere"})
    assert missing.status_code == 404 and missing.json()["error"] == "contact_group_not_found"
    for bad in ("com", "a..b", "-x.example"):
        response = await tenant_client.get("/v1/contacts", params={"domain": bad})
        assert response.status_code == 422 and response.json()["field"] == "domain", response.text
    for params in ({"sort": "rank"}, {"limit": 0}, {"two_way": "maybe"}, {"q": "a\x00b"}):
        response = await tenant_client.get("/v1/contacts", params=params)
        assert response.status_code == 422, (params, response.text)


# ---------------------------------------------------------------------------- read and change


async def test_get_and_update_a_contact_with_events(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient
) -> None:
    box = await mailbox(services, tenant.id)
    await seed(
        services,
        box,
        received(box, '"Al" <al@firm.example>', 2) + received(box, '"Al Smith" <Al+work@firm.example>', 1),
    )
    ids = await ids_by_email(tenant_client)
    assert set(ids) == {"al@firm.example", "al+work@firm.example"}  # firm.example folds nothing
    merged = await tenant_client.post(
        "/v1/contacts/merge", json={"into": ids["al@firm.example"], "from": [ids["al+work@firm.example"]]}
    )
    contact_id = merged.json()["id"]
    url = f"/v1/contacts/{contact_id}"
    got = (await tenant_client.get(url)).json()
    assert got["name"] == "Al" and got["organisation"] == "firm.example"
    assert got["emails"] == ["al@firm.example", "al+work@firm.example"]
    assert got["names_seen"] == {"Al": 2, "Al Smith": 1} and got["received_from"] == 3

    renamed = await tenant_client.patch(url, json={"name": "Alfred Smith", "notes": "met at FOSDEM\nbooth 3"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Alfred Smith" and renamed.json()["version"] == got["version"] + 1
    assert renamed.json()["notes"] == "met at FOSDEM\nbooth 3"
    await seed(services, box, received(box, '"Al" <al@firm.example>', 3))  # harvest keeps the user's name
    assert (await tenant_client.get(url)).json()["name"] == "Alfred Smith"
    found = (await tenant_client.get("/v1/contacts", params={"q": "alfred"})).json()["items"]
    assert [item["id"] for item in found] == [contact_id]  # the search knows the new name

    primary = await tenant_client.patch(
        url, json={"email": "AL+work@Firm.Example", "organisation": "Firm Ltd"}
    )
    assert primary.json()["email"] == "al+work@firm.example" and primary.json()["organisation"] == "Firm Ltd"
    assert primary.json()["emails"] == ["al+work@firm.example", "al@firm.example"]
    reset = await tenant_client.patch(url, json={"name": None, "organisation": None, "notes": None})
    assert reset.json()["name"] == "Al" and reset.json()["organisation"] == "firm.example"
    assert reset.json()["notes"] is None
    unchanged = await tenant_client.patch(url, json={})
    assert unchanged.json()["version"] == reset.json()["version"]

    not_its = await tenant_client.patch(url, json={"email": "someone@firm.example"})
    assert not_its.status_code == 422 and not_its.json()["field"] == "email"
    for body in ({"email": None}, {"name": "  "}, {"name": "a\nb"}, {"colour": "red"}, {"name": "x" * 201}):
        response = await tenant_client.patch(url, json=body)
        assert response.status_code == 422, (body, response.text)
    for bad in ("ct_nothere", "ct_..%00"):
        response = await tenant_client.get(f"/v1/contacts/{bad}")
        assert response.status_code == 404 and response.json()["error"] == "contact_not_found"

    updates = [p for p in await event_payloads(services, "contact.updated") if p["id"] == contact_id]
    versions = [p["version"] for p in updates]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert updates[-1] == {**reset.json(), "score": updates[-1]["score"]}  # the API item is the payload


async def test_create_by_hand_canonicalizes_refuses_duplicates_and_is_harvested_into(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient
) -> None:
    made = await tenant_client.post(
        "/v1/contacts",
        json={"email": " J.Doe+news@GoogleMail.com ", "name": "Jane Doe", "notes": "from the fair"},
    )
    assert made.status_code == 201, made.text
    jane = made.json()
    assert jane["email"] == "j.doe+news@googlemail.com"
    assert jane["emails"] == ["j.doe+news@googlemail.com", "jdoe@gmail.com"]  # and as folded
    assert jane["organisation"] is None and jane["score"] == 0.0 and jane["first_seen"] is None
    assert jane["owner"] is None and jane["version"] == 1

    dup = await tenant_client.post("/v1/contacts", json={"email": "jdoe@gmail.com"})
    assert dup.status_code == 409 and dup.json()["error"] == "contact_exists"
    assert jane["id"] in dup.json()["detail"] and dup.json()["contact_id"] == jane["id"]
    for email in ("not an address", "a@localhost", "x@[192.0.2.1]", ""):
        response = await tenant_client.post("/v1/contacts", json={"email": email})
        assert response.status_code == 422, (email, response.text)
    assert (
        await tenant_client.post("/v1/contacts", json={"email": "a@b.example", "x": 1})
    ).status_code == 422

    org = await tenant_client.post("/v1/contacts", json={"email": "Ed@Bücher.example", "owner": "u-7"})
    assert (
        org.json()["email"] == "ed@xn--bcher-kva.example"
        and org.json()["organisation"] == "xn--bcher-kva.example"
    )
    assert org.json()["owner"] == "u-7"

    box = await mailbox(services, tenant.id)
    done = await seed(services, box, received(box, '"Jane D" <jdoe@gmail.com>', 2))  # a folding mailbox
    assert done.created == [] and done.updated == [jane["id"]]
    after = (await tenant_client.get(f"/v1/contacts/{jane['id']}")).json()
    assert (
        after["received_from"] == 2 and after["name"] == "Jane Doe" and after["names_seen"] == {"Jane D": 2}
    )
    created = [p["id"] for p in await event_payloads(services, "contact.created")]
    assert created[:2] == [jane["id"], org.json()["id"]]


async def test_a_deleted_contact_stays_deleted_until_made_again_by_hand(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient
) -> None:
    box = await mailbox(services, tenant.id)
    await seed(
        services, box, received(box, "Spammy <spammy@promo.example>", 3) + received(box, "ok@fine.example")
    )
    ids = await ids_by_email(tenant_client)
    contact_id = ids["spammy@promo.example"]
    group = await add_group(services, tenant.id, "Leads", [contact_id])

    deleted = await tenant_client.delete(f"/v1/contacts/{contact_id}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await tenant_client.get(f"/v1/contacts/{contact_id}")).status_code == 404
    assert (await tenant_client.delete(f"/v1/contacts/{contact_id}")).status_code == 404
    assert set(await ids_by_email(tenant_client)) == {"ok@fine.example"}
    assert await ids_by_email(tenant_client, group=group) == {}

    done = await seed(
        services, box, received(box, "Spammy <SPAMMY@promo.example>", 2, at=T0 + timedelta(days=5))
    )
    assert done.messages == 2 and done.created == [] and done.updated == []
    assert set(await ids_by_email(tenant_client)) == {"ok@fine.example"}
    why = (
        await tenant_client.get("/v1/contacts/exclusions", params={"address": "Spammy@Promo.example"})
    ).json()
    assert why["contacts"] == [] and [d["contact_id"] for d in why["deleted"]] == [contact_id]
    assert [(e["reason"], e["messages"], e["mailbox_id"]) for e in why["exclusions"]] == [
        ("deleted", 2, box.id)
    ]
    assert "deleted contact" in why["exclusions"][0]["description"]

    again = await tenant_client.post("/v1/contacts", json={"email": "spammy@promo.example"})
    assert again.status_code == 201, again.text
    assert again.json()["received_from"] == 3  # its figures from before the deletion come back
    assert again.json()["id"] != contact_id
    await seed(services, box, received(box, "Spammy <spammy@promo.example>", 1, at=T0 + timedelta(days=6)))
    assert (await tenant_client.get(f"/v1/contacts/{again.json()['id']}")).json()["received_from"] == 4


async def test_merge_moves_keys_figures_names_and_groups(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient
) -> None:
    box = await mailbox(services, tenant.id)
    other = await mailbox(services, tenant.id)
    await seed(
        services,
        box,
        received(box, '"Kim Lee" <kim@home.example>', 2, at=T0)
        + sent(box, '"Kim (work)" <kim.lee@work.example>', 1, at=T0 + timedelta(days=2)),
    )
    await seed(
        services, other, received(other, '"K. Lee" <kimlee@mail.example>', 1, at=T0 - timedelta(days=9))
    )
    ids = await ids_by_email(tenant_client)
    into, work, mail = ids["kim@home.example"], ids["kim.lee@work.example"], ids["kimlee@mail.example"]
    await tenant_client.patch(f"/v1/contacts/{mail}", json={"notes": "old address"})
    team = await add_group(services, tenant.id, "Team", [work])
    both = await add_group(services, tenant.id, "Both", [into, work])

    merged = await tenant_client.post("/v1/contacts/merge", json={"into": into, "from": [work, mail, work]})
    assert merged.status_code == 200, merged.text
    kim = merged.json()
    assert kim["id"] == into and kim["email"] == "kim@home.example"
    assert sorted(kim["emails"]) == ["kim.lee@work.example", "kim@home.example", "kimlee@mail.example"]
    assert (kim["received_from"], kim["sent_to"], kim["two_way"]) == (3, 1, True)
    assert kim["first_seen"] == (T0 - timedelta(days=9)).isoformat()
    assert kim["last_seen"] == (T0 + timedelta(days=2)).isoformat()
    assert kim["names_seen"] == {"Kim Lee": 2, "Kim (work)": 1, "K. Lee": 1} and kim["name"] == "Kim Lee"
    assert kim["notes"] == "old address"
    assert set(kim["addresses_seen"]) == {"kim@home.example", "kim.lee@work.example", "kimlee@mail.example"}
    for gone in (work, mail):
        response = await tenant_client.get(f"/v1/contacts/{gone}")
        assert response.status_code == 404 and response.json()["error"] == "contact_not_found"
    assert set((await ids_by_email(tenant_client, group=team)).values()) == {into}
    assert set((await ids_by_email(tenant_client, group=both)).values()) == {into}
    assert (await tenant_client.get("/v1/contacts", params={"q": "kim"})).json()["items"][0]["id"] == into

    # a merged-away key is the merged contact's: new mail counts there, not as a new contact
    done = await seed(services, box, received(box, "kimlee@mail.example"))
    assert done.created == [] and done.updated == [into]
    history = (await tenant_client.get(f"/v1/contacts/{into}/history")).json()
    assert {g["name"] for g in history["groups"]} == {"Team", "Both"}
    assert {s["mailbox_id"]: sorted(s["keys"]) for s in history["sources"]} == {
        box.id: ["kim.lee@work.example", "kim@home.example", "kimlee@mail.example"],
        other.id: ["kimlee@mail.example"],
    }
    updated = [p for p in await event_payloads(services, "contact.updated") if p["id"] == into]
    assert updated and updated[-1]["received_from"] == 4

    for body, status, code in (
        ({"into": into, "from": [into]}, 422, "invalid_input"),
        ({"into": into, "from": []}, 422, "invalid_input"),
        ({"into": into, "from": [work]}, 404, "contact_not_found"),
        ({"into": "ct_nothere", "from": [into]}, 404, "contact_not_found"),
        ({"into": into, "from": ["../x"]}, 404, "contact_not_found"),
    ):
        response = await tenant_client.post("/v1/contacts/merge", json=body)
        assert (response.status_code, response.json()["error"]) == (status, code), (body, response.text)


async def test_history_and_exclusions_explain_why_an_address_is_left_out(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient
) -> None:
    box = await mailbox(services, tenant.id)
    await seed(
        services,
        box,
        received(box, "Lena <lena@club.example>", 2)
        + [(block("Lena <lena@club.example>", box.email, extra="List-Id: <news.club.example>\r\n"), T0)]
        + [(block("No Reply <no-reply@shop.example>", box.email), T0)],
    )
    ids = await ids_by_email(tenant_client)
    assert set(ids) == {"lena@club.example"}
    history = (await tenant_client.get(f"/v1/contacts/{ids['lena@club.example']}/history")).json()
    assert history["contact_id"] == ids["lena@club.example"] and history["groups"] == []
    [source] = history["sources"]
    assert (source["mailbox_id"], source["mailbox_email"], source["received_from"]) == (box.id, box.email, 2)
    [listed] = history["exclusions"]
    assert (listed["reason"], listed["messages"], listed["description"]) == (
        "mailing_list",
        1,
        "mail from a mailing list",
    )

    why = await tenant_client.get("/v1/contacts/exclusions", params={"address": "No-Reply@shop.example"})
    assert why.status_code == 200, why.text
    body = why.json()
    assert body["keys"] == ["no-reply@shop.example"] and body["contacts"] == [] and body["deleted"] == []
    assert (body["rule"], body["rule_description"]) == ("no_reply", "a no-reply address")
    assert [(e["reason"], e["mailbox_email"]) for e in body["exclusions"]] == [("no_reply", box.email)]
    me = (await tenant_client.get("/v1/contacts/exclusions", params={"address": box.email})).json()
    assert {e["reason"] for e in me["exclusions"]} == {"own_address"} and me["rule"] is None
    stranger = (
        await tenant_client.get("/v1/contacts/exclusions", params={"address": "x@nowhere.example"})
    ).json()
    assert stranger["exclusions"] == [] and stranger["contacts"] == [] and stranger["rule"] is None
    bad = await tenant_client.get("/v1/contacts/exclusions", params={"address": "nobody"})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_email"
    assert (await tenant_client.get("/v1/contacts/exclusions")).status_code == 422
    missing = await tenant_client.get("/v1/contacts/ct_nothere/history")
    assert missing.status_code == 404 and missing.json()["error"] == "contact_not_found"
