"""The dashboard's mail pages: a mailbox's messages by folder, and one message.

Every page is one or two calls of the library's mailbox handle (:mod:`mailport.mailboxes.handle`)
for the signed-in operator's tenant, so another tenant's mailbox is a 404 here as in the API.
A message's HTML is shown only as the sanitizer left it, inside an ``<iframe sandbox>`` without
``allow-scripts`` or ``allow-same-origin`` whose document carries its own Content-Security-Policy
(no scripts, no remote images or fonts: a tracking pixel does not fire because someone looked).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import Response

from mailport.connectors.folders import Folder
from mailport.errors import InputError
from mailport.mailboxes.handle import MailboxHandle
from mailport.mailboxes.mail_schemas import MAX_BULK
from mailport.web.deps import csrf, operator
from mailport.web.render import WebRoute, redirect, render
from mailport.web.session import WebSession
from mailport.web.state import WebState, get_web

router = APIRouter(route_class=WebRoute, include_in_schema=False)

PAGE_SIZE = 25
# The message document's own policy: inline styles and embedded (data:) images only.
FRAME_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; "
    "base-uri 'none'; form-action 'none'"
)


@dataclass(frozen=True)
class MailPage:
    """The signed-in operator's view of one of the tenant's mailboxes."""

    request: Request
    box: MailboxHandle
    web: WebState

    def url(self, path: str = "", **query: str | None) -> str:
        base = f"/mailboxes/{quote(self.box.mailbox_id)}/messages{path}"
        given = {k: v for k, v in query.items() if v}
        return f"{base}?{urlencode(given)}" if given else base


async def mail_page(
    request: Request,
    mailbox_id: str,
    session: WebSession = Depends(operator),
    web: WebState = Depends(get_web),
) -> MailPage:
    assert session.tenant_id is not None  # operator guarantees it
    return MailPage(request, MailboxHandle(web.services.mail, session.tenant_id, mailbox_id), web)


def _ascii(name: str) -> str:
    """A filename for browsers that ignore ``filename*``: ASCII, no quotes or separators."""
    cleaned = "".join(c if c.isascii() and c.isprintable() and c not in '"\\/;' else "_" for c in name)
    return cleaned or "attachment"


def is_seen(flags: tuple[str, ...]) -> bool:
    """Flags are neutral (``seen``), whichever connector fetched the message."""
    return "seen" in flags


def _ordered(folders: list[Folder]) -> list[Folder]:
    """Folders with a role first (inbox, then the others as the server listed them)."""
    return sorted(folders, key=lambda f: (f.role is None, f.role != "inbox"))


@router.get("/mailboxes/{mailbox_id}/messages")
async def messages(
    page: MailPage = Depends(mail_page),
    folder: str = Query("INBOX", max_length=1000),
    cursor: str | None = Query(None, max_length=2000),
    unseen: bool = Query(False),
) -> Response:
    mailbox = await page.web.services.mailboxes.get(page.box.tenant_id, page.box.mailbox_id)
    found, listing = await asyncio.gather(  # two pooled connections when the pool has them
        page.box.folders(),
        page.box.page(folder, limit=PAGE_SIZE, cursor=cursor, unseen=True if unseen else None),
    )
    folders = _ordered(found)
    return render(
        page.request,
        "mail/list.html",
        {
            "mailbox": mailbox,
            "folders": folders,
            "folder": folder,
            "current": next((f for f in folders if f.path == folder), None),
            "items": listing.items,
            "unseen": unseen,
            "first_url": page.url(folder=folder, unseen="true" if unseen else None) if cursor else None,
            "next_url": page.url(folder=folder, cursor=listing.next_cursor, unseen="true" if unseen else None)
            if listing.next_cursor
            else None,
            "page": page,
        },
    )


@router.get("/mailboxes/{mailbox_id}/messages/{ref}")
async def message(ref: str, page: MailPage = Depends(mail_page)) -> Response:
    mailbox = await page.web.services.mailboxes.get(page.box.tenant_id, page.box.mailbox_id)
    view, folders = await asyncio.gather(page.box.message(ref, links_in_new_tab=True), page.box.folders())
    shown = view.message
    frame = None
    if view.html:
        frame = (
            '<!doctype html><html><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{FRAME_CSP}">'
            '<base target="_blank"></head><body>' + view.html + "</body></html>"
        )
    return render(
        page.request,
        "mail/message.html",
        {
            "mailbox": mailbox,
            "message": shown,
            "seen": is_seen(shown.flags),
            "blocked": view.remote_images_blocked,
            "ref": ref,
            "frame": frame,
            "folders": _ordered(folders),
            "back_url": page.url(folder=shown.folder),
            "page": page,
        },
    )


@router.get("/mailboxes/{mailbox_id}/threads/{key}")
async def thread(key: str, page: MailPage = Depends(mail_page)) -> Response:
    """A conversation, oldest first, across the inbox and the sent folder."""
    mailbox = await page.web.services.mailboxes.get(page.box.tenant_id, page.box.mailbox_id)
    items = await page.box.thread(key)
    return render(page.request, "mail/thread.html", {"mailbox": mailbox, "items": items, "page": page})


@router.get("/mailboxes/{mailbox_id}/messages/{ref}/attachments/{index}")
async def attachment(ref: str, index: int, page: MailPage = Depends(mail_page)) -> Response:
    """The decoded attachment, always as a download (never rendered in the dashboard's origin)."""
    found, content = await page.box.attachment(ref, index)
    name = found.filename or f"attachment-{index}"
    return Response(
        content,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{_ascii(name)}"; '
            f"filename*=UTF-8''{quote(name, safe='')}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


@router.post("/mailboxes/{mailbox_id}/messages/bulk", dependencies=[Depends(csrf)])
async def bulk(
    page: MailPage = Depends(mail_page),
    action: Literal["seen", "unseen", "move", "delete"] = Form(...),
    refs: Annotated[list[str], Form(max_length=MAX_BULK)] = [],  # noqa: B006 (FastAPI copies it)
    to: str = Form("", max_length=1000),
    folder: str = Form("INBOX", max_length=1000),
) -> Response:
    """The list's selected messages, marked, moved or deleted in one request."""
    if not refs:
        raise InputError("no message selected", field="refs", hint="Tick the messages to act on first.")
    if action == "seen":
        await page.box.mark_seen(refs)
    elif action == "unseen":
        await page.box.mark_unseen(refs)
    elif action == "move":
        if not to:
            raise InputError("no folder to move to", field="to", hint="Choose a folder in the menu.")
        await page.box.move(refs, to)
    else:
        await page.box.delete(refs)
    return redirect(page.request, page.url(folder=folder))


@router.post("/mailboxes/{mailbox_id}/messages/{ref}/seen", dependencies=[Depends(csrf)])
async def mark_seen(ref: str, page: MailPage = Depends(mail_page)) -> Response:
    await page.box.mark_seen(ref)
    return redirect(page.request, page.url(f"/{quote(ref)}"))


@router.post("/mailboxes/{mailbox_id}/messages/{ref}/unseen", dependencies=[Depends(csrf)])
async def mark_unseen(
    ref: str, page: MailPage = Depends(mail_page), folder: str = Form("INBOX", max_length=1000)
) -> Response:
    await page.box.mark_unseen(ref)
    return redirect(page.request, page.url(folder=folder))


@router.post("/mailboxes/{mailbox_id}/messages/{ref}/move", dependencies=[Depends(csrf)])
async def move(
    ref: str, page: MailPage = Depends(mail_page), to: str = Form(..., max_length=1000)
) -> Response:
    moved = await page.box.move(ref, to)
    new = moved[0].new if moved else None
    if new is not None:
        return redirect(page.request, page.url(f"/{quote(new.encode())}"))
    return redirect(page.request, page.url(folder=to))


@router.post("/mailboxes/{mailbox_id}/messages/{ref}/delete", dependencies=[Depends(csrf)])
async def delete(
    ref: str, page: MailPage = Depends(mail_page), folder: str = Form("INBOX", max_length=1000)
) -> Response:
    await page.box.delete(ref)
    return redirect(page.request, page.url(folder=folder))


__all__ = ["router"]
