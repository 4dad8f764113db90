"""The dashboard's mail pages over HTTP (ASGI) on a mailbox of the real Dovecot: the folder
switcher with roles and unread counts, unread mail in bold, pages by cursor, a message's headers,
attachments (downloads) and HTML in a sandboxed frame; actions need the CSRF token; another
tenant's mailbox is a 404 everywhere."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.mailboxes.handle import MailboxHandle
from tests.e2e.web.api.conftest import CSRF
from tests.fixtures.api import BASE_URL, TenantHandle, create_tenant
from tests.integration.mail.conftest import MailBox, letter, new_box
from tests.mailstack.dovecot import Dovecot

MESSAGE_LINK = re.compile(r'href="(/mailboxes/[^/"]+/messages/(ref_[^"?/]+))"')


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"]})


@pytest.fixture
async def box(services: Services, tenant: TenantHandle, dovecot: Dovecot) -> MailBox:
    return await new_box(services, tenant, dovecot)


async def signed_in(app: FastAPI, api_key: str) -> httpx.AsyncClient:
    browser = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)
    token = CSRF.search((await browser.get("/signin")).text)
    assert token is not None
    signed = await browser.post("/signin", data={"csrf": token.group(1), "api_key": api_key})
    assert signed.status_code == 303, signed.text
    token = CSRF.search((await browser.get("/connect")).text)
    assert token is not None
    browser.headers["X-CSRF-Token"] = token.group(1)
    return browser


@pytest.fixture
async def stranger(app: FastAPI, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    other = await create_tenant(services)
    browser = await signed_in(app, other.api_key)
    yield browser
    await browser.aclose()


def _rows(page: str) -> list[str]:
    return re.findall(r'<tr data-testid="message" class="(\w+)">', page)


async def test_the_message_list_with_folders_unread_in_bold_and_pages(
    operator: httpx.AsyncClient, box: MailBox
) -> None:
    for n in range(27):
        box.deliver(letter(f"Anfrage {n:02}", sender="Jörg <joerg@example.test>"))
    handle = MailboxHandle(box.services.mail, box.tenant.id, box.mailbox_id)
    await handle.mark_seen((await handle.page(limit=1)).items)  # the newest is read

    dashboard = await operator.get("/")
    assert f'href="/mailboxes/{box.mailbox_id}/messages"' in dashboard.text

    first = await operator.get(f"/mailboxes/{box.mailbox_id}/messages")
    assert first.status_code == 200, first.text[:500]
    page = first.text
    inbox = re.search(r'<li class="current" data-testid="folder" data-path="INBOX">(.*?)</li>', page, re.S)
    assert inbox is not None and 'data-role="inbox"' in inbox.group(1)
    assert re.search(r'data-testid="unseen"[^>]*>26<', inbox.group(1))
    sent_folder = re.search(r'data-path="Sent">(.*?)</li>', page, re.S)
    assert sent_folder is not None and 'data-role="sent"' in sent_folder.group(1)
    assert _rows(page) == ["seen"] + ["unseen"] * 24
    assert "Anfrage 26" in page and "Jörg" in page and "Anfrage 01" not in page

    older = re.search(r'href="([^"]+)" rel="next"', page)
    assert older is not None
    second = await operator.get(html.unescape(older.group(1)))
    assert second.status_code == 200
    assert _rows(second.text) == ["unseen", "unseen"]
    assert "Anfrage 01" in second.text and "Anfrage 00" in second.text and 'rel="next"' not in second.text
    assert ">Newest<" in second.text

    unread = await operator.get(f"/mailboxes/{box.mailbox_id}/messages", params={"unseen": "true"})
    assert "Anfrage 26" not in unread.text and "Anfrage 25" in unread.text

    sent = await operator.get(f"/mailboxes/{box.mailbox_id}/messages", params={"folder": "Sent"})
    assert sent.status_code == 200 and 'data-testid="empty"' in sent.text
    missing = await operator.get(f"/mailboxes/{box.mailbox_id}/messages", params={"folder": "Nirgendwo"})
    assert missing.status_code == 404 and "folder_not_found" in missing.text


async def test_a_message_with_its_headers_attachment_and_sandboxed_html(
    operator: httpx.AsyncClient, box: MailBox
) -> None:
    box.deliver(
        letter(
            "Rechnung 7",
            sender="Buchhaltung <buha@example.test>",
            body="Summe 42",
            html='<p onmouseover="steal()">Summe <b>42 €</b></p><script>alert(1)</script>'
            '<img src="https://tracker.example/p.gif">',
            attachment=("rechnung-7.pdf", b"%PDF-1.4 seven"),
        )
    )
    listing = await operator.get(f"/mailboxes/{box.mailbox_id}/messages")
    link = MESSAGE_LINK.search(listing.text)
    assert link is not None
    shown = await operator.get(link.group(1))
    assert shown.status_code == 200, shown.text[:500]
    page = shown.text
    assert 'data-testid="subject">Rechnung 7<' in page
    assert "Buchhaltung &lt;buha@example.test&gt;" in page and "box@example.test" in page
    assert 'data-testid="blocked">1 remote image' in page

    frame = re.search(r"<iframe [^>]*>", page)
    assert frame is not None
    tag = frame.group(0)
    sandbox = re.search(r'sandbox="([^"]*)"', tag)
    assert sandbox is not None and "allow-scripts" not in sandbox.group(1)
    assert "allow-same-origin" not in sandbox.group(1)
    srcdoc = re.search(r'srcdoc="([^"]*)"', tag)
    assert srcdoc is not None
    document = html.unescape(srcdoc.group(1))
    assert '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'' in document
    assert "<b>42 €</b>" in document
    assert "<script" not in document and "alert" not in document
    assert "onmouseover" not in document and "tracker.example" not in document

    download = re.search(r'href="([^"]+/attachments/0)" download>rechnung-7.pdf<', page)
    assert download is not None
    got = await operator.get(download.group(1))
    assert got.status_code == 200 and got.content == b"%PDF-1.4 seven"
    assert got.headers["content-disposition"] == (
        "attachment; filename=\"rechnung-7.pdf\"; filename*=UTF-8''rechnung-7.pdf"
    )
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["x-content-type-options"] == "nosniff"
    none = await operator.get(download.group(1)[:-1] + "3")
    assert none.status_code == 404

    box.deliver(letter("Nur Text", body="Zeile 1\nZeile <2>"))
    listing = await operator.get(f"/mailboxes/{box.mailbox_id}/messages")
    link = MESSAGE_LINK.search(listing.text)
    assert link is not None
    text_only = await operator.get(link.group(1))
    assert '<pre class="message-text" data-testid="text-body">Zeile 1' in text_only.text
    assert "Zeile &lt;2&gt;" in text_only.text and "<iframe" not in text_only.text


async def test_actions_need_the_csrf_token_and_act(operator: httpx.AsyncClient, box: MailBox) -> None:
    box.deliver(letter("Aktion"))
    handle = MailboxHandle(box.services.mail, box.tenant.id, box.mailbox_id)
    item = (await handle.page()).items[0]
    ref = item.ref.encode()
    base = f"/mailboxes/{box.mailbox_id}/messages/{ref}"

    refused = await operator.post(f"{base}/seen", headers={"X-CSRF-Token": ""})
    assert refused.status_code == 403
    assert "seen" not in (await handle.page()).items[0].flags

    marked = await operator.post(f"{base}/seen")
    assert marked.status_code == 303 and marked.headers["location"] == base
    assert "seen" in (await handle.page()).items[0].flags
    shown = await operator.get(base)
    assert ">Mark as unread<" in shown.text
    unmarked = await operator.post(f"{base}/unseen", data={"folder": "INBOX"})
    assert unmarked.status_code == 303
    assert "seen" not in (await handle.page()).items[0].flags

    archive = await handle.create_folder("Ablage")
    moved = await operator.post(f"{base}/move", data={"to": archive.path})
    assert moved.status_code == 303 and "/messages/ref_" in moved.headers["location"]
    in_archive = (await handle.page(archive.path)).items
    assert [m.envelope.subject for m in in_archive] == ["Aktion"]
    new_base = f"/mailboxes/{box.mailbox_id}/messages/{in_archive[0].ref.encode()}"
    deleted = await operator.post(f"{new_base}/delete", data={"folder": archive.path})
    assert deleted.status_code == 303
    assert (await handle.page(archive.path)).items == []
    assert [m.envelope.subject for m in (await handle.page("Trash")).items] == ["Aktion"]


async def test_another_tenants_mailbox_is_not_found(
    stranger: httpx.AsyncClient, operator: httpx.AsyncClient, box: MailBox
) -> None:
    box.deliver(letter("Geheim"))
    handle = MailboxHandle(box.services.mail, box.tenant.id, box.mailbox_id)
    ref = (await handle.page()).items[0].ref.encode()
    base = f"/mailboxes/{box.mailbox_id}/messages"
    for path in (base, f"{base}/{ref}", f"{base}/{ref}/attachments/0"):
        answer = await stranger.get(path)
        assert answer.status_code == 404, (path, answer.text[:300])
        assert "Geheim" not in answer.text
    for action in ("seen", "unseen", "delete"):
        answer = await stranger.post(f"{base}/{ref}/{action}", data={"folder": "INBOX"})
        assert answer.status_code == 404, action
    answer = await stranger.post(f"{base}/{ref}/move", data={"to": "Trash"})
    assert answer.status_code == 404
    assert [m.envelope.subject for m in (await handle.page()).items] == ["Geheim"]
    assert "seen" not in (await handle.page()).items[0].flags
    bad = await operator.get(f"{base}/not-a-ref")
    assert bad.status_code == 422 and "invalid_input" in bad.text


async def test_a_conversation_from_the_message_view(operator: httpx.AsyncClient, box: MailBox) -> None:
    first = letter("Zimmer frei?", sender="Gast <gast@example.test>")
    root = first.split(b"Message-ID: ")[1].split(b"\r\n")[0].decode()
    box.deliver(first)
    box.deliver(letter("Re: Zimmer frei?", sender="Desk <desk@example.test>", reply_to=root), "Sent")
    listing = await operator.get(f"/mailboxes/{box.mailbox_id}/messages")
    link = MESSAGE_LINK.search(listing.text)
    assert link is not None
    shown = await operator.get(link.group(1))
    thread_link = re.search(r'href="([^"]+)" data-testid="thread-link"', shown.text)
    assert thread_link is not None
    conversation = await operator.get(thread_link.group(1))
    assert conversation.status_code == 200, conversation.text[:500]
    rows = re.findall(r'<tr data-testid="message".*?</tr>', conversation.text, re.S)
    assert len(rows) == 2
    assert "Zimmer frei?" in rows[0] and ">INBOX<" in rows[0]
    assert "Re: Zimmer frei?" in rows[1] and ">Sent<" in rows[1]
    unknown = await operator.get(f"/mailboxes/{box.mailbox_id}/threads/{'0' * 32}")
    assert unknown.status_code == 404 and "thread_not_found" in unknown.text


async def test_a_server_that_cannot_be_reached_is_a_page_with_the_hint(
    operator: httpx.AsyncClient, services: Services, tenant: TenantHandle
) -> None:
    from mailport.crypto import Secret
    from mailport.mailboxes.models import AuthMethod, NewMailbox, Security, ServerSettings
    from tests.mailstack.dovecot import free_port

    mailbox = await services.mailboxes.create(
        tenant.id,
        NewMailbox(
            email="nobody@example.test",
            auth_method=AuthMethod.PASSWORD,
            imap=ServerSettings("127.0.0.1", free_port(), Security.NONE),
            password=Secret("pw-nobody"),
        ),
    )
    page = await operator.get(f"/mailboxes/{mailbox.id}/messages", headers={"Accept": "text/html"})
    assert page.status_code == 503 and "mailbox_unreachable" in page.text
    assert "try again later" in page.text and "pw-nobody" not in page.text


async def test_selected_messages_marked_moved_and_deleted_at_once(
    operator: httpx.AsyncClient, stranger: httpx.AsyncClient, box: MailBox
) -> None:
    for n in range(4):
        box.deliver(letter(f"Stapel {n}"))
    handle = MailboxHandle(box.services.mail, box.tenant.id, box.mailbox_id)
    listing = await operator.get(f"/mailboxes/{box.mailbox_id}/messages")
    refs = re.findall(r'name="refs" value="(ref_[^"]+)" form="bulk"', listing.text)
    assert len(refs) == 4 and 'id="bulk"' in listing.text
    bulk = f"/mailboxes/{box.mailbox_id}/messages/bulk"

    refused = await operator.post(bulk, data={"action": "seen", "refs": refs}, headers={"X-CSRF-Token": ""})
    assert refused.status_code == 403
    foreign = await stranger.post(bulk, data={"action": "delete", "refs": refs})
    assert foreign.status_code == 404
    nothing = await operator.post(bulk, data={"action": "seen"})
    assert nothing.status_code == 422 and "no message selected" in nothing.text

    marked = await operator.post(bulk, data={"action": "seen", "refs": refs[:2], "folder": "INBOX"})
    assert marked.status_code == 303
    assert marked.headers["location"] == f"/mailboxes/{box.mailbox_id}/messages?folder=INBOX"
    flags = {m.ref.encode(): m.flags for m in (await handle.page()).items}
    assert ["seen" in flags[ref] for ref in refs] == [True, True, False, False]

    archive = await handle.create_folder("Stapelablage")
    moved = await operator.post(bulk, data={"action": "move", "refs": refs[1:3], "to": archive.path})
    assert moved.status_code == 303
    assert len((await handle.page(archive.path)).items) == 2
    no_target = await operator.post(bulk, data={"action": "move", "refs": refs[3:]})
    assert no_target.status_code == 422

    deleted = await operator.post(bulk, data={"action": "delete", "refs": [refs[0], refs[3]]})
    assert deleted.status_code == 303
    assert (await handle.page()).items == []
    assert len((await handle.page("Trash")).items) == 2
