"""The dashboard's contacts pages over HTTP (ASGI) on the real store, the book filled through
the harvest's write path from real header blocks: the list in score order with search, filters,
sorting and pages; a contact's figures, addresses, names and history; delete and merge only with
the CSRF token (a merge confirmed on its own page); the CSV and vCard exports; each mailbox's
harvest with "sync now"; names from mail headers escaped; another tenant's contact a 404."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import timedelta

import httpx
import pytest
import vobject

from mailport.bootstrap import Services
from mailport.mailboxes.schemas import ContactsPatch, MailboxUpdate, SettingsPatch
from tests.e2e.web.api.test_mail_pages import stranger
from tests.fixtures.api import TenantHandle
from tests.integration.contacts.seeded import T0, XSS_NAME, Seeded, add_mailbox, block, seed

__all__ = ["stranger"]  # the fixture: a browser signed in for another tenant

CONTACT_ROW = re.compile(r'data-testid="contact" data-contact-id="(ct_\w+)"')


def rows(page: str) -> list[str]:
    return CONTACT_ROW.findall(page)


@pytest.fixture
async def book(services: Services, tenant: TenantHandle) -> Seeded:
    return await seed(services, tenant.id)


async def test_the_list_ranks_filters_sorts_and_escapes(operator: httpx.AsyncClient, book: Seeded) -> None:
    joerg, ann, mallory = (
        book.ids[k] for k in ("joerg@example.de", "ann@partner.example", "mallory@evil.example")
    )
    dashboard = await operator.get("/")
    assert 'href="/contacts"' in dashboard.text  # in the navigation

    page = await operator.get("/contacts")
    assert page.status_code == 200, page.text[:500]
    assert rows(page.text)[0] == joerg and set(rows(page.text)) == {joerg, ann, mallory}
    assert XSS_NAME not in page.text and html.escape(XSS_NAME) in page.text  # escaped, shown
    assert "Jörg Müller" in page.text and "noreply@shop.example" not in page.text

    assert rows((await operator.get("/contacts", params={"q": "MÜLLER"})).text) == [joerg]
    assert rows((await operator.get("/contacts", params={"domain": "partner.example"})).text) == [ann]
    by_name = await operator.get("/contacts", params={"sort": "name"})
    assert rows(by_name.text) == [mallory, ann, joerg]  # "<script>…", "Ann Smith", "Jörg Müller"
    nothing = await operator.get("/contacts", params={"q": "nobody-at-all"})
    assert rows(nothing.text) == [] and 'data-testid="empty"' in nothing.text
    bad = await operator.get("/contacts", params={"sort": "rank"}, headers={"accept": "text/html"})
    assert bad.status_code == 422 and "invalid_input" in bad.text


async def test_pages_follow_the_cursor(
    operator: httpx.AsyncClient, services: Services, tenant: TenantHandle
) -> None:
    many = [
        (block(100 + n, f"From: Guest {n:02} <guest{n:02}@guests.example>\r\nTo: desk@hotel.example\r\n"),
         T0 + timedelta(hours=n))
        for n in range(53)
    ]  # fmt: skip
    await seed(services, tenant.id, blocks=many)
    first = await operator.get("/contacts")
    ids = rows(first.text)
    assert len(ids) == 50
    following = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert following is not None
    second = await operator.get(html.unescape(following.group(1)))
    rest = rows(second.text)
    assert len(rest) == 3 and not set(rest) & set(ids)
    assert 'rel="next"' not in second.text and "First page" in second.text


async def test_a_contact_with_its_figures_and_history(operator: httpx.AsyncClient, book: Seeded) -> None:
    page = await operator.get(f"/contacts/{book.ids['joerg@example.de']}")
    assert page.status_code == 200, page.text[:500]
    text = html.unescape(page.text)
    assert "Jörg Müller" in text and "Jörg M." in text  # names seen
    for address in ("joerg@example.de", "Joerg@Example.de", "JOERG@example.de"):
        assert address in text
    assert re.search(r'data-testid="sent-to">1<', page.text) and re.search(
        r'data-testid="received-from">2<', page.text
    )
    assert "desk@hotel.example" in text  # the mailbox that counted him
    assert re.search(r'data-testid="exclusion" data-reason="bulk"', page.text)

    mallory = await operator.get(f"/contacts/{book.ids['mallory@evil.example']}")
    assert XSS_NAME not in mallory.text and html.escape(XSS_NAME) in mallory.text
    missing = await operator.get("/contacts/ct_00000000000000000000000000", headers={"accept": "text/html"})
    assert missing.status_code == 404 and "contact_not_found" in missing.text


async def test_delete_needs_the_token(operator: httpx.AsyncClient, book: Seeded) -> None:
    mallory = book.ids["mallory@evil.example"]
    page = await operator.get(f"/contacts/{mallory}")
    assert f'action="/contacts/{mallory}/delete"' in page.text and "data-confirm=" in page.text
    token = operator.headers.pop("X-CSRF-Token")
    refused = await operator.post(f"/contacts/{mallory}/delete")
    assert refused.status_code == 403 and mallory in rows((await operator.get("/contacts")).text)
    operator.headers["X-CSRF-Token"] = token
    done = await operator.post(f"/contacts/{mallory}/delete")
    assert done.status_code == 303 and done.headers["location"] == "/contacts"
    assert mallory not in rows((await operator.get("/contacts")).text)
    assert (await operator.get(f"/contacts/{mallory}")).status_code == 404


async def test_merge_is_confirmed_then_done(operator: httpx.AsyncClient, book: Seeded) -> None:
    joerg, ann = book.ids["joerg@example.de"], book.ids["ann@partner.example"]
    review = await operator.post("/contacts/merge/review", data={"ids": [ann, joerg]})
    assert review.status_code == 200, review.text[:500]
    kept = re.search(r'name="into" value="(ct_\w+)" checked', review.text)
    assert kept is not None and kept.group(1) == joerg  # the higher score is kept by default
    assert rows((await operator.get("/contacts")).text).count(ann) == 1  # nothing merged yet

    one = await operator.post("/contacts/merge/review", data={"ids": [ann]}, headers={"accept": "text/html"})
    assert one.status_code == 422 and "at least two" in one.text

    token = operator.headers.pop("X-CSRF-Token")
    refused = await operator.post("/contacts/merge", data={"into": ann, "ids": [ann, joerg]})
    assert refused.status_code == 403
    operator.headers["X-CSRF-Token"] = token
    done = await operator.post("/contacts/merge", data={"into": ann, "ids": [ann, joerg]})
    assert done.status_code == 303 and done.headers["location"] == f"/contacts/{ann}"
    after = await operator.get("/contacts")
    assert joerg not in rows(after.text) and ann in rows(after.text)
    merged = html.unescape((await operator.get(f"/contacts/{ann}")).text)
    assert "joerg@example.de" in merged and "ann@partner.example" in merged


async def test_exports(operator: httpx.AsyncClient, book: Seeded) -> None:
    page = await operator.get("/contacts", params={"domain": "example.de"})
    link = re.search(r'href="([^"]+)" data-testid="export-csv"', page.text)
    assert link is not None and "domain=example.de" in link.group(1)
    exported = await operator.get(html.unescape(link.group(1)))
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert exported.headers["content-disposition"] == 'attachment; filename="contacts.csv"'
    assert [r["primary_email"] for r in csv.DictReader(io.StringIO(exported.text))] == ["joerg@example.de"]

    cards = await operator.get("/contacts/export", params={"format": "vcard"})
    assert cards.headers["content-type"].startswith("text/vcard")
    names = {card.fn.value for card in vobject.readComponents(cards.text)}
    assert names == {"Jörg Müller", "Ann Smith", XSS_NAME}


async def test_another_tenant_sees_none_of_it(stranger: httpx.AsyncClient, book: Seeded) -> None:
    joerg = book.ids["joerg@example.de"]
    assert rows((await stranger.get("/contacts")).text) == []
    assert (await stranger.get(f"/contacts/{joerg}")).status_code == 404
    assert (await stranger.post(f"/contacts/{joerg}/delete")).status_code == 404
    exported = await stranger.get("/contacts/export")
    assert "joerg" not in exported.text


async def test_owner_filter(
    operator: httpx.AsyncClient, book: Seeded, services: Services, tenant: TenantHandle
) -> None:
    owned = await seed(services, tenant.id, owner="user-7", email="user7@hotel.example")
    everyone = rows((await operator.get("/contacts")).text)
    assert set(everyone) == set(book.ids.values()) | set(owned.ids.values())
    page = await operator.get("/contacts", params={"owner": "user-7"})
    assert set(rows(page.text)) == set(owned.ids.values())
    assert '<option value="user-7" selected>' in page.text
    unowned = await operator.get("/contacts", params={"owner": ""})
    assert set(rows(unowned.text)) == set(book.ids.values())


async def test_the_harvest_of_each_mailbox_and_sync_now(
    operator: httpx.AsyncClient,
    stranger: httpx.AsyncClient,
    book: Seeded,
    services: Services,
    tenant: TenantHandle,
) -> None:
    harvesting = await add_mailbox(services, tenant.id, email="team@hotel.example", owner="user-7")
    patch = SettingsPatch(contacts=ContactsPatch(policy="sent_only"))
    await services.mailboxes.update(tenant.id, harvesting, MailboxUpdate(settings=patch))
    listing = await operator.get("/contacts")
    assert 'href="/contacts/harvest"' in listing.text

    page = await operator.get("/contacts/harvest")
    assert page.status_code == 200, page.text[:500]
    states = dict(
        re.findall(r'data-testid="harvest" data-mailbox-id="(mbx_\w+)" data-state="(\w+)"', page.text)
    )
    assert states == {book.mailbox_id: "off", harvesting: "pending"}  # switched on: the backfill is due
    assert "sent_only" in page.text and "owner user-7" in page.text
    action = f"/contacts/harvest/{harvesting}/sync"
    assert page.text.count(f'action="{action}"') == 2  # sync now, and a full re-sync
    assert f'action="/contacts/harvest/{book.mailbox_id}/sync"' not in page.text

    token = operator.headers.pop("X-CSRF-Token")
    assert (await operator.post(action)).status_code == 403
    operator.headers["X-CSRF-Token"] = token
    done = await operator.post(action, data={"full": "true"})
    assert done.status_code == 303 and done.headers["location"] == "/contacts/harvest"
    _, state = await services.contact_sync.state(tenant.id, harvesting)
    assert state is not None and state.state == "pending"

    off = await operator.post(f"/contacts/harvest/{book.mailbox_id}/sync", headers={"accept": "text/html"})
    assert off.status_code == 409 and "contacts_not_enabled" in off.text
    assert (await stranger.post(action)).status_code == 404
    assert harvesting not in (await stranger.get("/contacts/harvest")).text


async def test_group_and_organisation_filters(
    operator: httpx.AsyncClient, book: Seeded, services: Services, tenant: TenantHandle
) -> None:
    joerg, ann = book.ids["joerg@example.de"], book.ids["ann@partner.example"]
    vip = await services.contact_groups.create(tenant.id, name="VIP <gold>")
    await services.contact_groups.add_members(tenant.id, vip.id, [ann])
    page = await operator.get("/contacts")
    assert f'<option value="{vip.id}">VIP &lt;gold&gt;</option>' in page.text  # escaped too
    for domain in ("example.de", "partner.example", "evil.example"):  # the organisations' groups
        assert f'<option value="{domain}">{domain}</option>' in page.text
    assert rows((await operator.get("/contacts", params={"group": vip.id})).text) == [ann]
    by_organisation = await operator.get("/contacts", params={"domain": "example.de"})
    assert rows(by_organisation.text) == [joerg]
    assert '<option value="example.de" selected>' in by_organisation.text

    shown = html.unescape((await operator.get(f"/contacts/{ann}")).text)
    assert "VIP <gold>" in shown and f'href="/contacts?group={vip.id}"' in shown
    unknown = await operator.get("/contacts", params={"group": "cg_00000000000000000000000000"})
    assert unknown.status_code == 404 and "contact_group_not_found" in unknown.text
