"""Every live mailbox route over HTTP against the real Dovecot, in both layouts (the standard
bed, and the second instance whose personal namespace is ``INBOX.`` with separator ``.``):
folders made, renamed and deleted; listing pages that neither repeat nor hide while new mail
arrives; a message read with its HTML sanitized (inline images pointing at the attachment
route), raw and attachments; search with non-ASCII and native criteria; a thread across the
inbox and Sent; flags, move, delete and their bulk forms; import; and the documented errors."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from mailport.config import Settings
from mailport.imap import ImapClient
from tests.fixtures.api import NewTenantClient
from tests.mailstack.dovecot import Dovecot

LAYOUTS = ["imap", "imap-dotted"]
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cf00000301010018dd8db00000000049454e44ae426082"
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"], "public_url": "https://mp.example"})


def plain(subject: str, *, sender: str = "Alice <alice@example.test>", **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "Reader <reader@example.test>"
    msg["Subject"] = subject
    msg["Date"] = "Tue, 02 Jan 2024 10:00:00 +0000"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(f"{subject}\n\nA plain body.\n")
    return msg.as_bytes().replace(b"\n", b"\r\n")


def newsletter() -> bytes:
    msg = EmailMessage()
    msg["From"] = "News <news@example.test>"
    msg["To"] = "reader@example.test"
    msg["Subject"] = "Newsletter"
    msg["Message-ID"] = "<news-1@example.test>"
    msg.set_content("The text part.")
    msg.add_alternative(
        '<p onclick="steal()">Hello<script>alert(1)</script></p>'
        '<img src="cid:logo@example.test" alt="logo"><img src="https://track.example/p.gif">'
        '<a href="javascript:alert(1)">bad</a><a href="https://example.com/">good</a>',
        subtype="html",
    )
    msg.get_payload()[1].add_related(PNG, "image", "png", cid="<logo@example.test>", filename="logo.png")
    msg.add_attachment(b"a,b\r\n1,2\r\n", maintype="text", subtype="csv", filename="table.csv")
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@dataclass
class Live:
    client: httpx.AsyncClient
    base: str
    other: ImapClient  # another IMAP client of the same user (puts mail, as a sender would)
    prefix: str
    folders: dict[str, str]  # role -> path

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(self.base + path, params=params)

    async def post(self, path: str, body: Any = None, **params: Any) -> httpx.Response:
        return await self.client.post(self.base + path, json=body, params=params)

    async def page(self, **params: Any) -> dict[str, Any]:
        answer = await self.get("/messages", **params)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def by_subject(self, folder: str = "INBOX") -> dict[str, dict[str, Any]]:
        items = (await self.page(folder=folder, limit=500))["data"]
        return {item["subject"]: item for item in items}


@pytest.fixture(params=LAYOUTS)
async def live(request: pytest.FixtureRequest, tenant_client: httpx.AsyncClient) -> AsyncIterator[Live]:
    dovecot: Dovecot = request.getfixturevalue(
        "dovecot_dotted" if request.param == "imap-dotted" else "dovecot"
    )
    user, password = dovecot.dyn_user(f"a{uuid.uuid4().hex[:10]}")
    made = await tenant_client.post(
        "/v1/mailboxes",
        json={
            "email": user,
            "auth_method": "password",
            "password": password,
            "imap": {"host": "127.0.0.1", "port": dovecot.imap_port, "security": "none"},
        },
    )
    assert made.status_code == 201, made.text
    other = await dovecot.client(user, password)
    prefix = "INBOX." if request.param == "imap-dotted" else ""
    live = Live(tenant_client, f"/v1/mailboxes/{made.json()['id']}", other, prefix, {})
    listed = await live.get("/folders")
    assert listed.status_code == 200, listed.text
    live.folders = {f["role"]: f["path"] for f in listed.json()["data"] if f["role"]}
    if "sent" not in live.folders or "trash" not in live.folders:  # the dotted bed starts bare
        for name in ("Sent", "Trash"):
            created = await live.post("/folders", {"name": name})
            assert created.status_code in (201, 409), created.text
        listed = await live.get("/folders")
        live.folders = {f["role"]: f["path"] for f in listed.json()["data"] if f["role"]}
    try:
        yield live
    finally:
        await other.logout()


async def test_folders_are_created_renamed_and_deleted(live: Live) -> None:
    made = await live.post("/folders", {"name": "Größe"})
    assert made.status_code == 201, made.text
    folder = made.json()
    assert (folder["path"], folder["name"], folder["messages"]) == (f"{live.prefix}Größe", "Größe", 0)
    again = await live.post("/folders", {"name": "Größe"})
    assert again.status_code == 409 and again.json()["error"] == "folder_exists"

    child = await live.post("/folders", {"name": "2024", "parent": folder["path"]})
    assert child.status_code == 201, child.text
    assert child.json()["path"] == folder["path"] + folder["delimiter"] + "2024"

    renamed = await live.client.patch(f"{live.base}/folders/{folder['path']}", json={"name": "Kunden"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["path"] == f"{live.prefix}Kunden" and renamed.json()["name"] == "Kunden"
    paths = {f["path"] for f in (await live.get("/folders")).json()["data"]}
    assert f"{live.prefix}Kunden" in paths and folder["path"] not in paths

    missing = await live.client.patch(f"{live.base}/folders/{live.prefix}Nowhere", json={"name": "X"})
    assert missing.status_code == 404 and missing.json()["error"] == "folder_not_found", missing.text
    gone = await live.client.delete(f"{live.base}/folders/{live.prefix}Nowhere")
    assert gone.status_code == 404 and gone.json()["error"] == "folder_not_found", gone.text

    nested = renamed.json()["path"] + renamed.json()["delimiter"] + "2024"
    assert nested in paths  # moved with its parent
    top = await live.client.patch(f"{live.base}/folders/{nested}", json={"name": "Jahr 2024", "parent": ""})
    assert top.status_code == 200 and top.json()["path"] == f"{live.prefix}Jahr 2024", top.text
    back = await live.client.patch(
        f"{live.base}/folders/{top.json()['path']}", json={"name": "2024", "parent": renamed.json()["path"]}
    )
    assert back.status_code == 200 and back.json()["path"] == nested, back.text
    assert (await live.client.delete(f"{live.base}/folders/{nested}")).status_code == 204
    assert (await live.client.delete(f"{live.base}/folders/{renamed.json()['path']}")).status_code == 204
    paths = {f["path"] for f in (await live.get("/folders")).json()["data"]}
    assert not any(p.startswith(f"{live.prefix}Kunden") for p in paths)


async def test_pages_neither_repeat_nor_hide_while_mail_arrives(live: Live) -> None:
    for n in range(7):
        await live.other.append("INBOX", plain(f"message {n}"))
    first = await live.page(limit=3)
    assert [m["subject"] for m in first["data"]] == ["message 6", "message 5", "message 4"]
    assert first["next_cursor"]
    await live.other.append("INBOX", plain("arrived meanwhile"))  # newer: not on later pages
    second = await live.page(limit=3, cursor=first["next_cursor"])
    third = await live.page(limit=3, cursor=second["next_cursor"])
    assert [m["subject"] for m in second["data"] + third["data"]] == [f"message {n}" for n in (3, 2, 1, 0)]
    assert third["next_cursor"] is None
    assert (await live.page(limit=1))["data"][0]["subject"] == "arrived meanwhile"

    item = first["data"][0]
    assert item["ref"].startswith("ref_") and item["folder"] == "INBOX"
    assert item["from"] == [{"name": "Alice", "email": "alice@example.test"}]
    assert item["to"] == [{"name": "Reader", "email": "reader@example.test"}]
    assert item["flags"] == [] and item["size"] > 0 and re.fullmatch("[0-9a-f]{32}", item["thread_key"])
    assert item["received_at"] and item["has_attachments"] is False

    unseen = await live.page(unseen="true", limit=500)
    assert len(unseen["data"]) == 8
    assert (await live.page(unseen="false"))["data"] == []

    bad = await live.get("/messages", cursor="not-a-cursor")
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_cursor", bad.text
    nowhere = await live.get("/messages", folder=f"{live.prefix}Nowhere")
    assert nowhere.status_code == 404 and nowhere.json()["error"] == "folder_not_found", nowhere.text


async def test_a_cursor_of_a_folder_made_again_has_expired(live: Live) -> None:
    folder = f"{live.prefix}Reset"
    await live.other.create(folder)
    for n in range(3):
        await live.other.append(folder, plain(f"old {n}"))
    cursor = (await live.page(folder=folder, limit=1))["next_cursor"]
    await live.other.delete(folder)
    await live.other.create(folder)
    await live.other.append(folder, plain("new"))
    expired = await live.get("/messages", folder=folder, cursor=cursor)
    assert expired.status_code == 410, expired.text
    assert expired.json()["error"] == "cursor_expired" and expired.json()["hint"]


async def test_a_message_is_read_with_its_html_sanitized(live: Live) -> None:
    source = newsletter()
    await live.other.append("INBOX", source)
    ref = (await live.page())["data"][0]["ref"]
    answer = await live.get(f"/messages/{ref}")
    assert answer.status_code == 200, answer.text
    message = answer.json()
    assert message["ref"] == ref and message["subject"] == "Newsletter"
    assert message["message_id"] == "news-1@example.test" and message["text"].strip() == "The text part."
    html = message["html"]
    for bad in ("<script", "onclick", "javascript:", "track.example"):
        assert bad not in html, bad
    attachments = {a["filename"]: a for a in message["attachments"]}
    logo = attachments["logo.png"]["index"]
    url = f"https://mp.example{live.base}/messages/{ref}/attachments/{logo}"
    assert f'<img src="{url}" alt="logo">' in html
    assert '<a href="https://example.com/" rel="noopener noreferrer">good</a>' in html
    assert message["remote_images_blocked"] == 1 and message["flags"] == [] and message["labels"] == []
    assert message["received_at"] and message["truncated"] is False

    original = (await live.get(f"/messages/{ref}", html="original")).json()
    assert "<script>alert(1)</script>" in original["html"]
    assert (await live.get(f"/messages/{ref}", html="none")).json()["html"] is None
    remote = (await live.get(f"/messages/{ref}", remote_images="true")).json()
    assert 'src="https://track.example/p.gif"' in remote["html"] and remote["remote_images_blocked"] == 0

    image = await live.client.get(url.removeprefix("https://mp.example"))
    assert image.status_code == 200 and image.content == PNG
    assert image.headers["content-type"] == "image/png"
    table = await live.get(f"/messages/{ref}/attachments/{attachments['table.csv']['index']}")
    assert table.status_code == 200 and table.content == b"a,b\r\n1,2\r\n"
    assert 'filename="table.csv"' in table.headers["content-disposition"]
    none = await live.get(f"/messages/{ref}/attachments/9")
    assert none.status_code == 404, none.text

    raw = await live.get(f"/messages/{ref}/raw")
    assert raw.status_code == 200 and raw.headers["content-type"] == "message/rfc822"
    assert raw.content == source


async def test_a_message_gone_from_the_server_is_404(live: Live) -> None:
    await live.other.append("INBOX", plain("short-lived"))
    ref = (await live.page())["data"][0]["ref"]
    assert (
        await live.client.delete(f"{live.base}/messages/{ref}", params={"permanent": "true"})
    ).status_code == 204
    for path in (f"/messages/{ref}", f"/messages/{ref}/raw", f"/messages/{ref}/attachments/0"):
        answer = await live.get(path)
        assert answer.status_code == 404 and answer.json()["error"] == "message_not_found", (
            path,
            answer.text,
        )
    answer = await live.post(f"/messages/{ref}/flags", {"add": ["seen"]})
    assert answer.status_code == 404 and answer.json()["error"] == "message_not_found", answer.text


async def test_search_with_non_ascii_and_native_criteria(live: Live) -> None:
    await live.other.append("INBOX", plain("Grüße aus Köln", sender="Jürgen <juergen@example.test>"))
    await live.other.append("INBOX", plain("Invoice 42", sender="Billing <billing@example.test>"))
    await live.other.append("INBOX", plain("Lunch", X_Ticket="T-7"))

    async def subjects(body: dict[str, Any]) -> list[str]:
        answer = await live.post("/messages/search", body)
        assert answer.status_code == 200, answer.text
        return [m["subject"] for m in answer.json()["data"]]

    assert await subjects({"subject": "Grüße"}) == ["Grüße aus Köln"]
    assert await subjects({"from": "Jürgen"}) == ["Grüße aus Köln"]
    assert await subjects({"from": "billing@example.test"}) == ["Invoice 42"]
    assert await subjects({"headers": {"X-Ticket": "T-7"}}) == ["Lunch"]
    assert await subjects({"native": 'SUBJECT "Invoice"'}) == ["Invoice 42"]
    assert await subjects({"text": "plain body", "limit": 2}) == ["Lunch", "Invoice 42"]
    assert await subjects({"seen": True}) == []
    bad = await live.post("/messages/search", {"native": "SUBJECT (unbalanced"})
    assert bad.status_code == 422, bad.text


async def test_a_thread_spans_the_inbox_and_sent(live: Live) -> None:
    await live.other.append("INBOX", plain("Question", Message_ID="<q1@example.test>"))
    await live.other.append(
        live.folders["sent"],
        plain("Re: Question", Message_ID="<a1@example.test>", In_Reply_To="<q1@example.test>",
              References="<q1@example.test>"),
    )  # fmt: skip
    await live.other.append("INBOX", plain("Unrelated", Message_ID="<u1@example.test>"))
    key = (await live.by_subject())["Question"]["thread_key"]
    answer = await live.get(f"/threads/{key}")
    assert answer.status_code == 200, answer.text
    thread = answer.json()["data"]
    assert [(m["subject"], m["folder"]) for m in thread] == [
        ("Question", "INBOX"),
        ("Re: Question", live.folders["sent"]),
    ]
    unknown = await live.get(f"/threads/{'0' * 32}")
    assert unknown.status_code == 404 and unknown.json()["error"] == "thread_not_found", unknown.text
    bad = await live.get("/threads/not-a-key")
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_input", bad.text


async def test_flags_move_delete_and_their_bulk_forms(live: Live) -> None:
    for n in range(4):
        await live.other.append("INBOX", plain(f"act {n}"))
    refs = {s: m["ref"] for s, m in (await live.by_subject()).items()}

    assert (
        await live.post(f"/messages/{refs['act 0']}/flags", {"add": ["seen", "flagged", "$Work"]})
    ).status_code == 204
    assert (
        await live.post("/messages/flags", {"refs": [refs["act 1"], refs["act 2"]], "add": ["seen"]})
    ).status_code == 204
    flags = {s: m["flags"] for s, m in (await live.by_subject()).items()}
    assert flags["act 0"] == ["$Work", "flagged", "seen"] or set(flags["act 0"]) == {
        "$Work",
        "flagged",
        "seen",
    }
    assert flags["act 1"] == ["seen"] and flags["act 2"] == ["seen"] and flags["act 3"] == []
    assert (await live.post(f"/messages/{refs['act 0']}/flags", {"remove": ["flagged"]})).status_code == 204
    assert set((await live.by_subject())["act 0"]["flags"]) == {"$Work", "seen"}

    archive = (await live.post("/folders", {"name": "Archive"})).json()["path"]
    moved = await live.post(f"/messages/{refs['act 0']}/move", {"folder": archive})
    assert moved.status_code == 200, moved.text
    new_ref = moved.json()["ref"]
    assert new_ref and new_ref != refs["act 0"]
    assert (await live.get(f"/messages/{new_ref}")).json()["subject"] == "act 0"
    assert (await live.get(f"/messages/{refs['act 0']}")).status_code == 404

    bulk = await live.post("/messages/move", {"refs": [refs["act 1"], refs["act 2"]], "folder": archive})
    assert bulk.status_code == 200, bulk.text
    pairs = bulk.json()["data"]
    assert [p["ref"] for p in pairs] == [refs["act 1"], refs["act 2"]] and all(p["new_ref"] for p in pairs)
    assert sorted(await live.by_subject(archive)) == ["act 0", "act 1", "act 2"]
    missing = await live.post(f"/messages/{refs['act 3']}/move", {"folder": f"{live.prefix}Nowhere"})
    assert missing.status_code == 404 and missing.json()["error"] == "folder_not_found", missing.text

    assert (await live.client.delete(f"{live.base}/messages/{refs['act 3']}")).status_code == 204
    assert list(await live.by_subject()) == []
    assert list(await live.by_subject(live.folders["trash"])) == ["act 3"]
    archived = [m["ref"] for m in (await live.page(folder=archive))["data"]]
    assert (await live.post("/messages/delete", {"refs": archived, "permanent": True})).status_code == 204
    assert (await live.page(folder=archive))["data"] == []
    assert list(await live.by_subject(live.folders["trash"])) == ["act 3"]


async def test_import_stores_a_message_with_flags_and_date(live: Live) -> None:
    raw = plain("Imported", Message_ID="<imp@example.test>")
    answer = await live.client.post(
        f"{live.base}/messages/import",
        params={
            "folder": live.folders["sent"],
            "flags": "seen,flagged",
            "received_at": "2023-05-06T07:08:09Z",
        },
        content=raw,
        headers={"content-type": "message/rfc822"},
    )
    assert answer.status_code == 201, answer.text
    ref = answer.json()["ref"]
    assert ref  # Dovecot has UIDPLUS
    item = (await live.page(folder=live.folders["sent"]))["data"][0]
    assert item["ref"] == ref and set(item["flags"]) == {"seen", "flagged"}
    assert item["received_at"].startswith("2023-05-06T07:08:09")
    assert (await live.get(f"/messages/{ref}/raw")).content == raw
    nowhere = await live.client.post(
        f"{live.base}/messages/import",
        params={"folder": f"{live.prefix}Nowhere"},
        content=raw,
        headers={"content-type": "message/rfc822"},
    )
    assert nowhere.status_code == 404 and nowhere.json()["error"] == "folder_not_found", nowhere.text


async def test_another_tenant_sees_nothing_of_a_live_mailbox(
    live: Live, new_tenant_client: NewTenantClient
) -> None:
    await live.other.append("INBOX", plain("private"))
    item = (await live.page())["data"][0]
    _other, intruder = await new_tenant_client()
    for path in ("/folders", "/messages", f"/messages/{item['ref']}", f"/messages/{item['ref']}/raw",
                 f"/threads/{item['thread_key']}"):  # fmt: skip
        answer = await intruder.get(live.base + path)
        assert answer.status_code == 404 and "private" not in answer.text, (path, answer.text)
    answer = await intruder.post(live.base + "/messages/search", json={"subject": "private"})
    assert answer.status_code == 404
    assert (await live.page())["data"][0]["flags"] == []  # untouched
