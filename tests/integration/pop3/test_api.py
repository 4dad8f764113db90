"""POP3 mailboxes through /v1/mailboxes: the ``pop3`` block (and no ``imap``) on create, read
and PATCH, the after-processing actions it allows (``none`` by default, ``delete``), and every
mailbox route that needs what POP3 lacks (folders, flags, moves, search, threads, drafts,
deleting by reference) answering 422 ``unsupported_feature`` without opening a POP3 session
(which would lock the maildrop the watcher polls)."""

from __future__ import annotations

from typing import Any

import httpx

from mailport.connectors.base import MessageRef
from tests.fixtures.api import SecretWatch
from tests.mailstack.dovecot import Dovecot


def pop3_body(dovecot: Dovecot, user: str, password: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "email": user,
        "auth_method": "password",
        "password": password,
        "connector": "pop3",
        "pop3": {"host": "127.0.0.1", "port": dovecot.pop3s_port, "security": "ssl"},
    }
    return body | overrides


async def test_create_read_and_change_a_pop3_mailbox(
    tenant_client: httpx.AsyncClient,
    dovecot: Dovecot,
    password_user: tuple[str, str],
    secret_watch: SecretWatch,
) -> None:
    user, password = password_user
    secret_watch.add(password)
    created = await tenant_client.post("/v1/mailboxes", json=pop3_body(dovecot, user, password))
    assert created.status_code == 201, created.text
    mailbox_id = created.json()["id"]
    got = (await tenant_client.get(f"/v1/mailboxes/{mailbox_id}")).json()
    assert got["connector"] == "pop3" and got["imap"] is None
    assert got["pop3"] == {
        "host": "127.0.0.1",
        "port": dovecot.pop3s_port,
        "security": "ssl",
        "username": None,
        "trusted_certificate": None,
    }
    assert got["settings"]["after_processing"] == "none"
    patched = await tenant_client.patch(
        f"/v1/mailboxes/{mailbox_id}",
        json={"pop3": {"host": "127.0.0.1", "port": dovecot.pop3_port, "security": "starttls"}},
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["pop3"]["port"], patched.json()["pop3"]["security"]) == (
        dovecot.pop3_port,
        "starttls",
    )
    assert patched.json()["status"] == "pending"
    deleting = await tenant_client.patch(
        f"/v1/mailboxes/{mailbox_id}", json={"settings": {"after_processing": "delete"}}
    )
    assert deleting.status_code == 200 and deleting.json()["settings"]["after_processing"] == "delete"
    for action in ("mark_read", "move:Done"):
        refused = await tenant_client.patch(
            f"/v1/mailboxes/{mailbox_id}", json={"settings": {"after_processing": action}}
        )
        assert refused.status_code == 422 and refused.json()["error"] == "unsupported_feature", refused.text
    folder = await tenant_client.patch(
        f"/v1/mailboxes/{mailbox_id}", json={"settings": {"folder": "Archive"}}
    )
    assert folder.status_code == 422 and folder.json()["error"] == "unsupported_feature", folder.text
    imap = await tenant_client.patch(
        f"/v1/mailboxes/{mailbox_id}", json={"imap": {"host": "127.0.0.1", "port": 993, "security": "ssl"}}
    )
    assert imap.status_code == 422 and imap.json()["field"] == "imap"


async def test_a_pop3_mailbox_needs_its_server_and_no_imap(
    tenant_client: httpx.AsyncClient, dovecot: Dovecot, password_user: tuple[str, str]
) -> None:
    user, password = password_user
    body = pop3_body(dovecot, user, password)
    del body["pop3"]
    missing = await tenant_client.post("/v1/mailboxes", json=body)
    assert missing.status_code == 422 and missing.json()["field"] == "pop3", missing.text
    both = await tenant_client.post(
        "/v1/mailboxes",
        json=pop3_body(dovecot, user, password, imap={"host": "127.0.0.1", "port": 993, "security": "ssl"}),
    )
    assert both.status_code == 422 and both.json()["field"] == "imap", both.text
    folders = await tenant_client.post(
        "/v1/mailboxes", json=pop3_body(dovecot, user, password, settings={"folders": ["INBOX", "Sent"]})
    )
    assert folders.status_code == 422 and folders.json()["error"] == "unsupported_feature", folders.text
    archive = await tenant_client.post(
        "/v1/mailboxes", json=pop3_body(dovecot, user, password, settings={"folder": "Archive"})
    )
    assert archive.status_code == 422 and archive.json()["error"] == "unsupported_feature", archive.text
    marking = await tenant_client.post(
        "/v1/mailboxes", json=pop3_body(dovecot, user, password, settings={"after_processing": "mark_read"})
    )
    assert marking.status_code == 422 and marking.json()["error"] == "unsupported_feature", marking.text
    imap_with_pop3 = await tenant_client.post(
        "/v1/mailboxes",
        json=pop3_body(
            dovecot,
            user,
            password,
            connector="imap",
            imap={"host": "127.0.0.1", "port": 993, "security": "ssl"},
        ),
    )
    assert imap_with_pop3.status_code == 422 and imap_with_pop3.json()["field"] == "pop3"


async def test_routes_needing_a_missing_feature_answer_unsupported_feature(
    tenant_client: httpx.AsyncClient, dovecot: Dovecot, password_user: tuple[str, str]
) -> None:
    user, password = password_user
    created = await tenant_client.post("/v1/mailboxes", json=pop3_body(dovecot, user, password))
    base = f"/v1/mailboxes/{created.json()['id']}"
    ref = MessageRef("INBOX", "uidl", "000000016b13ffc6").encode()
    logins = dovecot.logins(user)
    calls = [
        ("GET", f"{base}/folders", None),
        ("POST", f"{base}/folders", {"name": "Archive"}),
        ("PATCH", f"{base}/folders/INBOX", {"name": "Other"}),
        ("DELETE", f"{base}/folders/Archive", None),
        ("GET", f"{base}/messages", None),
        ("POST", f"{base}/messages/search", {"subject": "hello"}),
        ("POST", f"{base}/messages/flags", {"refs": [ref], "add": ["seen"]}),
        ("POST", f"{base}/messages/move", {"refs": [ref], "folder": "Archive"}),
        ("POST", f"{base}/messages/delete", {"refs": [ref]}),
        ("POST", f"{base}/messages/{ref}/flags", {"add": ["seen"]}),
        ("POST", f"{base}/messages/{ref}/move", {"folder": "Archive"}),
        ("DELETE", f"{base}/messages/{ref}", None),
        ("GET", f"{base}/threads/{'0' * 32}", None),
        ("GET", f"{base}/drafts", None),
    ]
    for method, url, body in calls:
        answer = await tenant_client.request(method, url, json=body)
        assert answer.status_code == 422, (method, url, answer.text)
        error = answer.json()
        assert error["error"] == "unsupported_feature" and error["hint"], (method, url, error)
        assert "pop3" in error["detail"], (method, url, error)
    assert dovecot.logins(user) == logins  # no POP3 session was opened for any of them
