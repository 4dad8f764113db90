"""The dashboard's outbox page: a mailbox's outbound queue, newest first, with each send's
state, recipients, subject and last error in the server's own words, and a cancel button for
a send still scheduled or queued.

One call of the library's mailbox handle (:mod:`mailport.mailboxes.handle`) per page for the
signed-in operator's tenant, so another tenant's mailbox is a 404 here as in the API, and a
cancel answers ``send_not_cancellable`` as ``DELETE …/outbox/{send_id}`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from mailport.mailboxes.handle import MailboxHandle
from mailport.sending.models import CANCELLABLE, SendState
from mailport.web.deps import csrf, operator
from mailport.web.render import WebRoute, redirect, render
from mailport.web.session import WebSession
from mailport.web.state import WebState, get_web

router = APIRouter(route_class=WebRoute, include_in_schema=False)

PAGE_SIZE = 25
STATES = tuple(state.value for state in SendState)


@dataclass(frozen=True)
class OutboxPage:
    """The signed-in operator's view of one mailbox's outbound queue."""

    request: Request
    box: MailboxHandle
    web: WebState

    def url(self, path: str = "", **query: str | None) -> str:
        base = f"/mailboxes/{quote(self.box.mailbox_id)}/outbox{path}"
        given = {k: v for k, v in query.items() if v}
        return f"{base}?{urlencode(given)}" if given else base


async def outbox_page(
    request: Request,
    mailbox_id: str,
    session: WebSession = Depends(operator),
    web: WebState = Depends(get_web),
) -> OutboxPage:
    assert session.tenant_id is not None  # operator guarantees it
    box = MailboxHandle(web.services.mail, session.tenant_id, mailbox_id, web.services.sending)
    return OutboxPage(request, box, web)


@router.get("/mailboxes/{mailbox_id}/outbox")
async def outbox(
    page: OutboxPage = Depends(outbox_page),
    state: SendState | None = Query(None),
    cursor: str | None = Query(None, max_length=200),
) -> Response:
    mailbox = await page.web.services.mailboxes.get(page.box.tenant_id, page.box.mailbox_id)
    found = await page.box.outbox(state=state, limit=PAGE_SIZE, cursor=cursor)
    shown = state.value if state else None
    return render(
        page.request,
        "outbox/list.html",
        {
            "mailbox": mailbox,
            "items": found.items,
            "state": shown,
            "states": STATES,
            "cancellable": CANCELLABLE,
            "first_url": page.url(state=shown) if cursor else None,
            "next_url": page.url(state=shown, cursor=found.next_cursor) if found.next_cursor else None,
            "page": page,
        },
    )


@router.post("/mailboxes/{mailbox_id}/outbox/{send_id}/cancel", dependencies=[Depends(csrf)])
async def cancel(send_id: str, page: OutboxPage = Depends(outbox_page)) -> Response:
    await page.box.cancel_send(send_id)
    return redirect(page.request, page.url())
