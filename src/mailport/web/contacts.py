"""The dashboard's contacts pages: the tenant's contacts, searchable and ranked, one contact with
its figures and its history (which mailbox saw it, which addresses were left out and why), the
delete and merge actions, the CSV and vCard exports, and each mailbox's harvest with a
"sync now" button.

Every page is one or two calls of the contact services (:attr:`Services.contacts`,
:attr:`Services.contact_groups`, :attr:`Services.contact_sync`) for the signed-in operator's
tenant, the calls the API's ``/v1/contacts`` routes make, so another tenant's contact is a 404
here as there. Names come from mail headers: the templates escape everything (Jinja2 autoescape).
A merge is confirmed on a page of its own that names the contact kept; a delete by the browser's
confirmation, as the outbox's cancel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import Response, StreamingResponse

from mailport.clock import utc_now
from mailport.contacts.groups import ContactGroup
from mailport.contacts.harvesting import enabled
from mailport.contacts.queries import ContactQuery, Sort
from mailport.contacts.schedule import SyncState
from mailport.contacts.views import current_score
from mailport.errors import InputError
from mailport.mailboxes.models import Mailbox
from mailport.web.deps import csrf, operator
from mailport.web.render import WebRoute, redirect, render
from mailport.web.session import WebSession
from mailport.web.state import WebState, get_web

router = APIRouter(route_class=WebRoute, include_in_schema=False)

PAGE_SIZE = 50
MAX_MERGE = 50
ANY_OWNER = "*"
MAX_CHOICES = 200  # groups and organisations a filter offers
SORT_LABELS: tuple[tuple[str, str], ...] = (
    ("score", "Score"),
    ("name", "Name"),
    ("last_seen", "Last seen"),
    ("first_seen", "First seen"),
)


@dataclass(frozen=True)
class Filters:
    """What the list shows: the search, the narrowing filters, the order and the page."""

    q: str | None = None
    owner: str | None = None
    group: str | None = None
    domain: str | None = None
    sort: Sort = "score"
    cursor: str | None = None

    def query(self, **changes: str | None) -> dict[str, str]:
        """The list's URL parameters (defaults left out), with ``changes`` applied."""
        values: dict[str, str | None] = {
            "q": self.q,
            "owner": self.owner,
            "group": self.group,
            "domain": self.domain,
            "sort": None if self.sort == "score" else self.sort,
        }
        values.update(changes)
        return {k: v for k, v in values.items() if v is not None and (v or k == "owner")}

    def url(self, path: str = "/contacts", **changes: str | None) -> str:
        given = self.query(**changes)
        return f"{path}?{urlencode(given)}" if given else path


def _blank(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


async def filters(
    q: str | None = Query(None, max_length=200),
    owner: str | None = Query(None, max_length=200),
    group: str | None = Query(None, max_length=100),
    domain: str | None = Query(None, max_length=255),
    sort: Sort = Query("score"),
    cursor: str | None = Query(None, max_length=200),
) -> Filters:
    """The filters as the list's form sends them: an empty field is no filter, but ``owner=`` is
    the book of mailboxes without an owner, as in the API (the form's "every book" is ``*``)."""
    book = None if owner is None or owner == ANY_OWNER else owner
    return Filters(_blank(q), book, _blank(group), _blank(domain), sort, _blank(cursor))


@dataclass(frozen=True)
class ContactsPage:
    """The signed-in operator's view of the tenant's contacts."""

    request: Request
    tenant_id: str
    web: WebState


async def contacts_page(
    request: Request, session: WebSession = Depends(operator), web: WebState = Depends(get_web)
) -> ContactsPage:
    assert session.tenant_id is not None  # operator guarantees it
    return ContactsPage(request, session.tenant_id, web)


def list_query(shown: Filters, *, limit: int = PAGE_SIZE) -> ContactQuery:
    return ContactQuery(
        q=shown.q, domain=shown.domain, group=shown.group, sort=shown.sort, limit=limit, cursor=shown.cursor
    )


def contact_url(contact_id: str) -> str:
    return f"/contacts/{quote(contact_id, safe='')}"


async def group_choices(page: ContactsPage) -> list[ContactGroup]:
    """The tenant's own groups, for the group filter."""
    found = await page.web.services.contact_groups.list(page.tenant_id, kind="custom", limit=MAX_CHOICES)
    return sorted(found.items, key=lambda g: (g.name.casefold(), g.owner))


async def organisation_choices(page: ContactsPage, shown: Filters) -> list[str]:
    """The organisations (the automatic groups' domains, one per book) for the organisation
    filter, which narrows by domain across every book; the current choice stays offered."""
    found = await page.web.services.contact_groups.list(
        page.tenant_id, kind="organisation", limit=MAX_CHOICES
    )
    return sorted({g.name for g in found.items} | ({shown.domain} if shown.domain else set()))


async def _owners(page: ContactsPage) -> list[str]:
    """The owners the filter offers: those of the tenant's mailboxes (a book exists per owner)."""
    found = await page.web.services.mailboxes.list(page.tenant_id, limit=200)
    return sorted({m.owner for m in found.items if m.owner})


@router.get("/contacts")
async def contacts(
    page: ContactsPage = Depends(contacts_page), shown: Filters = Depends(filters)
) -> Response:
    services = page.web.services
    found = await services.contacts.list_contacts(page.tenant_id, list_query(shown), owner=shown.owner)
    now = utc_now()
    return render(
        page.request,
        "contacts/list.html",
        {
            "rows": [(c, current_score(c, now)) for c in found.items],
            "shown": shown,
            "sorts": SORT_LABELS,
            "owners": await _owners(page),
            "groups": await group_choices(page),
            "organisations": await organisation_choices(page, shown),
            "any_owner": ANY_OWNER,
            "first_url": shown.url(cursor=None) if shown.cursor else None,
            "next_url": shown.url(cursor=found.next_cursor) if found.next_cursor else None,
            "export_csv": shown.url("/contacts/export", format="csv"),
            "export_vcard": shown.url("/contacts/export", format="vcard"),
            "max_merge": MAX_MERGE,
        },
    )


MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "vcard": "text/vcard; charset=utf-8"}
SUFFIXES = {"csv": "csv", "vcard": "vcf"}


@router.get("/contacts/export")
async def export(
    page: ContactsPage = Depends(contacts_page),
    shown: Filters = Depends(filters),
    format: Literal["csv", "vcard"] = Query("csv"),
) -> Response:
    """The listed contacts (every page of them) as a download, streamed as it is written."""
    chunks = page.web.services.contacts.export(page.tenant_id, format, list_query(shown), owner=shown.owner)
    first = await anext(aiter(chunks), None)  # a refusal (an unknown group) is a page, not a cut stream

    async def body() -> AsyncIterator[bytes]:
        if first is not None:
            yield _bytes(first)
            async for chunk in chunks:
                yield _bytes(chunk)

    return StreamingResponse(
        body(),
        media_type=MEDIA_TYPES[format],
        headers={
            "Content-Disposition": f'attachment; filename="contacts.{SUFFIXES[format]}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


def _bytes(chunk: str | bytes) -> bytes:
    return chunk.encode("utf-8") if isinstance(chunk, str) else chunk


@router.post("/contacts/merge/review", dependencies=[Depends(csrf)])
async def merge_review(
    page: ContactsPage = Depends(contacts_page),
    ids: Annotated[list[str], Form(max_length=MAX_MERGE)] = [],  # noqa: B006 (FastAPI copies it)
) -> Response:
    """The confirmation of a merge: the chosen contacts, the one to keep picked (the highest score)."""
    chosen = list(dict.fromkeys(ids))
    if len(chosen) < 2:
        raise InputError(
            "choose at least two contacts to merge",
            field="ids",
            hint="Tick two or more contacts in the list.",
        )
    services = page.web.services
    now = utc_now()
    found = [await services.contacts.get(page.tenant_id, contact_id) for contact_id in chosen]
    rows = sorted(((c, current_score(c, now)) for c in found), key=lambda row: -row[1])
    return render(page.request, "contacts/merge.html", {"rows": rows, "keep": rows[0][0].id})


@router.post("/contacts/merge", dependencies=[Depends(csrf)])
async def merge(
    page: ContactsPage = Depends(contacts_page),
    into: str = Form(..., max_length=100),
    ids: Annotated[list[str], Form(max_length=MAX_MERGE)] = [],  # noqa: B006 (FastAPI copies it)
) -> Response:
    """Merge the confirmed contacts into the one kept; then show it."""
    others = [contact_id for contact_id in dict.fromkeys(ids) if contact_id != into]
    if not others:
        raise InputError("nothing to merge into this contact", field="ids", hint="Choose the contacts again.")
    merged = await page.web.services.contacts.merge(page.tenant_id, into, others)
    return redirect(page.request, contact_url(merged.id))


@dataclass(frozen=True)
class HarvestRow:
    mailbox: Mailbox
    on: bool  # settings.contacts set, policy not off
    sync: SyncState | None  # None: never switched on


@router.get("/contacts/harvest")
async def harvest(page: ContactsPage = Depends(contacts_page)) -> Response:
    """Each mailbox's harvest: switched on or not, its state, when it last ran and what it saw."""
    services = page.web.services
    found = await services.mailboxes.list(page.tenant_id, limit=200)
    rows = []
    for mailbox in found.items:
        _, state = await services.contact_sync.state(page.tenant_id, mailbox.id)
        rows.append(HarvestRow(mailbox, enabled(mailbox.settings.contacts), state))
    return render(page.request, "contacts/harvest.html", {"rows": rows})


@router.post("/contacts/harvest/{mailbox_id}/sync", dependencies=[Depends(csrf)])
async def sync_now(
    mailbox_id: str, page: ContactsPage = Depends(contacts_page), full: bool = Form(False)
) -> Response:
    """Ask the contacts worker to harvest the mailbox now (``full``: from the start of the backfill)."""
    await page.web.services.contact_sync.request(page.tenant_id, mailbox_id, full=full)
    return redirect(page.request, "/contacts/harvest")


@router.get("/contacts/{contact_id}")
async def contact(contact_id: str, page: ContactsPage = Depends(contacts_page)) -> Response:
    services = page.web.services
    shown = await services.contacts.get(page.tenant_id, contact_id)
    history = await services.contacts.history(page.tenant_id, contact_id)
    return render(
        page.request,
        "contacts/contact.html",
        {
            "contact": shown,
            "score": current_score(shown, utc_now()),
            "history": history,
        },
    )


@router.post("/contacts/{contact_id}/delete", dependencies=[Depends(csrf)])
async def delete(contact_id: str, page: ContactsPage = Depends(contacts_page)) -> Response:
    """Delete the contact; harvesting remembers it and does not bring it back."""
    await page.web.services.contacts.delete(page.tenant_id, contact_id)
    return redirect(page.request, "/contacts")


__all__ = ["router"]
