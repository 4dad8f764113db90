"""The library's mailbox handle (``mailport.open()`` → ``mp.mailbox(...)``) against the real
Dovecot: folders (both layouts, a non-ASCII name), pages that follow cursors newest first,
flags, move, delete, import, raw source, the parsed message with sanitized HTML and its
attachments; another tenant's mailbox is ``not_found``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import mailport
from mailport.bootstrap import Services
from mailport.connectors.folders import Role
from mailport.errors import FolderNotFoundError, InputError, NotFoundError
from mailport.mailboxes.handle import MailboxHandle
from tests.fixtures.api import create_tenant
from tests.integration.mail.conftest import MailBox, letter

FOLDER = "Kundenanfragen Größe"


def handle(box: MailBox) -> MailboxHandle:
    return MailboxHandle(box.services.mail, box.tenant.id, box.mailbox_id)


async def test_the_package_exports_the_entry_points() -> None:
    assert {"open", "Mailport", "MailboxHandle", "watch"} <= set(mailport.__all__)
    assert mailport.MailboxHandle is MailboxHandle
    assert callable(mailport.open)


async def test_folders_created_renamed_and_deleted_in_either_layout(any_box: MailBox) -> None:
    box = handle(any_box)
    prefix = any_box.prefix
    made = await box.create_folder(FOLDER)
    assert made.path == prefix + FOLDER and made.name == FOLDER
    folders = {f.path: f for f in await box.folders()}
    assert folders["INBOX"].role is Role.INBOX and folders[prefix + "Sent"].role is Role.SENT
    assert prefix + FOLDER in folders

    renamed = await box.rename_folder(made.path, name="Ärger")
    assert renamed.path == prefix + "Ärger"
    paths = {f.path for f in await box.folders()}
    assert prefix + "Ärger" in paths and prefix + FOLDER not in paths
    await box.delete_folder(renamed.path)
    assert prefix + "Ärger" not in {f.path for f in await box.folders()}
    with pytest.raises(FolderNotFoundError):
        await box.delete_folder(renamed.path)


async def test_messages_newest_first_across_pages_with_filters(mail_box: MailBox) -> None:
    for n in range(7):
        mail_box.deliver(letter(f"message {n}"))
    box = handle(mail_box)

    every = [item async for item in box.messages(page_size=3)]
    assert [m.envelope.subject for m in every] == [f"message {n}" for n in reversed(range(7))]
    assert every[0].folder == "INBOX" and every[0].envelope.from_[0].email == "sender@example.test"
    assert [m.envelope.subject async for m in box.messages(page_size=2, limit=3)] == [
        "message 6",
        "message 5",
        "message 4",
    ]
    first = await box.page(limit=3)
    assert len(first.items) == 3 and first.next_cursor
    second = await box.page(limit=3, cursor=first.next_cursor)
    assert [m.envelope.subject for m in second.items] == ["message 3", "message 2", "message 1"]

    await box.mark_seen(every[:5])  # items, refs and strings are all accepted
    unseen = [m.envelope.subject async for m in box.messages(unseen=True)]
    assert unseen == ["message 1", "message 0"]
    await box.flag(every[0].ref.encode(), add=["flagged"], remove=["seen"])
    top = (await box.page(limit=1)).items[0]
    assert "flagged" in top.flags and "seen" not in top.flags
    with pytest.raises(InputError):
        await box.flag(every[0], add=[])


async def test_reading_one_message_raw_parsed_and_its_attachment(mail_box: MailBox) -> None:
    mail_box.deliver(
        letter(
            "Bestellung",
            body="Guten Tag",
            html='<p onclick="x()">Guten <b>Tag</b><script>alert(1)</script><img src="https://t.example/p.gif"></p>',
            attachment=("rechnung.pdf", b"%PDF-1.4 fake"),
        )
    )
    box = handle(mail_box)
    item = (await box.page()).items[0]
    assert item.has_attachments is not False

    raw = await box.raw(item)
    assert b"Subject: Bestellung" in raw and raw.endswith(b"\r\n")

    view = await box.message(item)
    shown = view.message
    assert view.ref == item.ref.encode() and shown.folder == "INBOX"
    assert shown.subject == "Bestellung" and shown.text and "Guten Tag" in shown.text
    assert view.html is not None and "<b>Tag</b>" in view.html and view.remote_images_blocked == 1
    assert "script" not in view.html and "onclick" not in view.html and "t.example" not in view.html
    assert [a.filename for a in shown.attachments] == ["rechnung.pdf"]
    assert "seen" not in shown.flags  # reading does not mark it read
    original = await box.message(item.ref, html="original")
    assert original.html is not None and "<script>" in original.html
    assert (await box.message(item, html="none")).html is None
    with pytest.raises(InputError):
        await box.message(item, html="bogus")

    meta, content = await box.attachment(item, 0)
    assert meta.filename == "rechnung.pdf" and content == b"%PDF-1.4 fake"
    with pytest.raises(NotFoundError):
        await box.attachment(item, 5)


async def test_move_delete_and_import(mail_box: MailBox) -> None:
    for n in range(3):
        mail_box.deliver(letter(f"act {n}"))
    box = handle(mail_box)
    items = (await box.page()).items
    archive = await box.create_folder("Archiv")

    moved = await box.move(items[:2], archive.path)
    assert [m.old for m in moved] == [items[0].ref, items[1].ref]
    assert all(m.new is not None and m.new.scope == archive.path for m in moved)
    assert [m.envelope.subject async for m in box.messages(archive.path)] == ["act 2", "act 1"]

    await box.delete(items[2])  # to the trash
    assert [m async for m in box.messages()] == []
    trashed = [m async for m in box.messages("Trash")]
    assert [m.envelope.subject for m in trashed] == ["act 0"]
    await box.delete(trashed, permanent=True)
    assert [m async for m in box.messages("Trash")] == []

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    ref = await box.import_message(letter("imported"), folder=archive.path, flags=["seen"], received_at=when)
    assert ref is not None and ref.scope == archive.path
    first = (await box.page(archive.path, limit=1, since=datetime(2026, 1, 1, tzinfo=UTC))).items
    found = {m.envelope.subject: m for m in [m async for m in box.messages(archive.path)]}
    assert "seen" in found["imported"].flags and found["imported"].received_at == when
    assert first  # the since filter keeps mail received after it


async def test_another_tenants_mailbox_is_not_found(mail_box: MailBox, services: Services) -> None:
    stranger = await create_tenant(services)
    box = MailboxHandle(services.mail, stranger.id, mail_box.mailbox_id)
    with pytest.raises(NotFoundError):
        await box.folders()
    with pytest.raises(NotFoundError):
        [m async for m in box.messages()]


async def test_open_builds_and_closes_its_own_services(mail_box: MailBox, services: Services) -> None:
    async with mailport.open(services.settings) as mp:
        tenant_id = await mp.tenant_id(mail_box.tenant.name)
        assert tenant_id == mail_box.tenant.id
        folders = await mp.mailbox(tenant_id, mail_box.mailbox_id).folders()
        assert folders[0].path == "INBOX"
    with pytest.raises(RuntimeError):
        mp.mailbox(tenant_id, mail_box.mailbox_id)


async def test_a_conversation_across_inbox_and_sent(mail_box: MailBox) -> None:
    first = letter("Zimmer frei?", sender="Gast <gast@example.test>")
    root = first.split(b"Message-ID: ")[1].split(b"\r\n")[0].decode()
    mail_box.deliver(first)
    mail_box.deliver(letter("Re: Zimmer frei?", sender="Desk <desk@example.test>", reply_to=root), "Sent")
    mail_box.deliver(letter("Etwas anderes"))
    box = handle(mail_box)
    listed = {m.envelope.subject: m for m in [m async for m in box.messages()]}
    key = listed["Zimmer frei?"].thread_key
    assert key is not None and key != listed["Etwas anderes"].thread_key

    thread = await box.thread(key)
    assert [(m.envelope.subject, m.folder) for m in thread] == [
        ("Zimmer frei?", "INBOX"),
        ("Re: Zimmer frei?", "Sent"),
    ]


async def test_input_the_api_refuses_is_refused_before_the_server_is_asked(mail_box: MailBox) -> None:
    box = handle(mail_box)
    refusals = [
        box.search(subject="a\r\nA1 LOGOUT"),
        box.search(headers={"X Bad": "v"}),
        box.flag("ref_x", add=["bad flag"]),
        box.flag("ref_x", add=["seen"], remove=["seen"]),
        box.flag([], add=["seen"]),
        box.move("ref_x", "Archiv*"),
        box.create_folder("two\nlines"),
        box.page("INBOX\r\nX"),
        box.import_message(b"x", flags=["(bad)"]),
    ]
    for call in refusals:
        with pytest.raises(InputError) as refused:
            await call
        assert refused.value.code in ("invalid_input", "unknown_field"), refused.value
    with pytest.raises(InputError):
        await box.raw("not-a-ref")
    with pytest.raises(InputError):
        await box.thread("not-a-key")


async def test_a_borrowed_service_graph_stays_open(mail_box: MailBox, services: Services) -> None:
    async with mailport.open(services=services) as mp:
        assert mp.services is services
        box = mp.mailbox(mail_box.tenant.id, mail_box.mailbox_id)
        assert [f.path for f in await box.folders()][0] == "INBOX"
    assert (await handle(mail_box).folders())[0].path == "INBOX"  # not closed by leaving
