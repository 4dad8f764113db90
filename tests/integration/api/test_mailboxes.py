"""/v1/mailboxes: CRUD, pagination and filters, validation of every field, conflicts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fixtures.api import SecretWatch
from tests.integration.api.helpers import mailbox_body, with_path

DEFAULT_SENDING = {"sent_copy": "auto", "aliases": [], "rate_per_minute": None, "rate_per_day": None}


async def create(client: httpx.AsyncClient, watch: SecretWatch, **overrides: Any) -> dict[str, Any]:
    body = mailbox_body(**overrides)
    watch.add(body.get("password") or "")
    response = await client.post("/v1/mailboxes", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_create_get_update_delete(tenant_client: httpx.AsyncClient, secret_watch: SecretWatch):
    body = mailbox_body(email="Booking@Example.COM")
    secret_watch.add(body["password"])
    response = await tenant_client.post("/v1/mailboxes", json=body)
    assert response.status_code == 201, response.text
    mailbox = response.json()
    assert mailbox["id"].startswith("mbx_")
    assert mailbox["email"] == "Booking@example.com"
    assert mailbox["has_password"] is True and mailbox["oauth"] is None and "password" not in mailbox
    assert mailbox["imap"] == {
        "host": "imap.example.com",
        "port": 993,
        "security": "ssl",
        "username": "booking",
        "trusted_certificate": None,
    }
    assert mailbox["smtp"]["username"] == "booking-out"  # IMAP and SMTP user names may differ
    assert mailbox["settings"] == {
        **body["settings"],
        "folders": [body["settings"]["folder"]],
        "sending": DEFAULT_SENDING,
        "contacts": None,
    }
    assert mailbox["status"] == "pending" and mailbox["error_count_24h"] == 0
    assert mailbox["last_tested_at"] is None and mailbox["provider_id"] is None

    got = await tenant_client.get(f"/v1/mailboxes/{mailbox['id']}")
    assert got.status_code == 200 and got.json() == mailbox

    new_password = "new-" + body["password"]
    secret_watch.add(new_password)
    patched = await tenant_client.patch(
        f"/v1/mailboxes/{mailbox['id']}",
        json={
            "password": new_password,
            "label": None,
            "settings": {"after_processing": "move:Done/Bookings"},
        },
    )
    assert patched.status_code == 200, patched.text
    after = patched.json()
    assert after["label"] is None and after["has_password"] is True
    assert after["settings"] == {
        **mailbox["settings"],
        "after_processing": "move:Done/Bookings",
    }
    assert after["updated_at"] >= mailbox["updated_at"]

    no_smtp = await tenant_client.patch(f"/v1/mailboxes/{mailbox['id']}", json={"smtp": None})
    assert no_smtp.status_code == 200 and no_smtp.json()["smtp"] is None

    assert (await tenant_client.delete(f"/v1/mailboxes/{mailbox['id']}")).status_code == 204
    gone = await tenant_client.get(f"/v1/mailboxes/{mailbox['id']}")
    assert gone.status_code == 404 and gone.json()["error"] == "not_found"
    assert (await tenant_client.delete(f"/v1/mailboxes/{mailbox['id']}")).status_code == 404


async def test_defaults_are_never_destructive(tenant_client: httpx.AsyncClient, secret_watch: SecretWatch):
    created = await create(tenant_client, secret_watch, smtp=None, settings=None, label=None, purpose=None)
    assert created["settings"] == {
        "from_name": None,
        "check_interval": 60,
        "folder": "INBOX",
        "after_processing": "none",
        "folders": ["INBOX"],
        "sending": DEFAULT_SENDING,
        "contacts": None,
    }
    assert created["smtp"] is None and created["label"] is None


async def test_oauth_mailbox_takes_no_password(tenant_client: httpx.AsyncClient, secret_watch: SecretWatch):
    created = await create(tenant_client, secret_watch, auth_method="oauth2", password=None)
    assert created["has_password"] is False and created["auth_method"] == "oauth2"
    refused = await tenant_client.patch(f"/v1/mailboxes/{created['id']}", json={"password": "x"})
    assert refused.status_code == 422 and refused.json()["field"] == "password"


async def test_duplicate_email_is_a_conflict(tenant_client: httpx.AsyncClient, secret_watch: SecretWatch):
    first = await create(tenant_client, secret_watch)
    again = await tenant_client.post("/v1/mailboxes", json=mailbox_body(email=first["email"]))
    assert again.status_code == 409
    assert again.json()["error"] == "conflict" and again.json()["field"] == "email"


async def test_pagination_and_filters(tenant_client: httpx.AsyncClient, secret_watch: SecretWatch):
    ids = [
        (await create(tenant_client, secret_watch, purpose="booking" if i % 2 else "support"))["id"]
        for i in range(7)
    ]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await tenant_client.get("/v1/mailboxes", params=params)).json()
        assert len(page["items"]) <= 3
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids  # creation order, each once

    booking = (await tenant_client.get("/v1/mailboxes", params={"purpose": "booking"})).json()
    assert [m["id"] for m in booking["items"]] == ids[1::2] and booking["next_cursor"] is None
    pending = (await tenant_client.get("/v1/mailboxes", params={"status": "pending", "limit": 200})).json()
    assert len(pending["items"]) == 7
    connected = (await tenant_client.get("/v1/mailboxes", params={"status": "connected"})).json()
    assert connected["items"] == []

    for params in ({"limit": 0}, {"limit": 201}, {"status": "asleep"}, {"cursor": "bm9wZQ"}, {"limit": "x"}):
        bad = await tenant_client.get("/v1/mailboxes", params=params)
        assert bad.status_code == 422, (params, bad.text)
        assert set(bad.json()) >= {"error", "detail", "hint"}


async def test_hosts_are_idna_normalized_and_ip_literals_accepted(
    tenant_client: httpx.AsyncClient, secret_watch: SecretWatch
):
    created = await create(
        tenant_client,
        secret_watch,
        imap={"host": "Mail.Bücher.de.", "port": 143, "security": "starttls"},
        smtp={"host": "[2001:4860:4860:0::8888]", "port": 25, "security": "none"},
    )
    assert created["imap"]["host"] == "mail.xn--bcher-kva.de"
    assert created["imap"]["username"] is None
    assert created["smtp"]["host"] == "2001:4860:4860::8888"


INVALID: list[tuple[str, Any, str]] = [
    ("email", "not-an-address", "email"),
    ("email", "a@b@example.com", "email"),
    ("email", "user@", "email"),
    ("email", "x" * 400 + "@example.com", "email"),
    ("email", 42, "email"),
    ("email", ..., "email"),
    ("label", "x" * 201, "label"),
    ("label", "two\nlines", "label"),
    ("purpose", "", "purpose"),
    ("purpose", "p" * 101, "purpose"),
    ("auth_method", "kerberos", "auth_method"),
    ("auth_method", ..., "auth_method"),
    ("password", ..., "password"),
    ("password", "", "password"),
    ("password", "line\nbreak", "password"),
    ("password", "p" * 1025, "password"),
    ("imap", ..., "imap"),
    ("imap.host", "", "imap.host"),
    ("imap.host", "bad host", "imap.host"),
    ("imap.host", "imap.example.com:993", "imap.host"),
    ("imap.host", "-lead.example.com", "imap.host"),
    ("imap.host", "a" * 64 + ".example.com", "imap.host"),
    ("imap.host", "under_score.example.com", "imap.host"),
    ("imap.host", "999.1.1.1", "imap.host"),
    ("imap.port", 0, "imap.port"),
    ("imap.port", 65536, "imap.port"),
    ("imap.port", "993", "imap.port"),
    ("imap.port", 99.5, "imap.port"),
    ("imap.security", "tls", "imap.security"),
    ("imap.username", "", "imap.username"),
    ("imap.username", "a\r\nb", "imap.username"),
    ("imap.extra", 1, "imap.extra"),
    ("smtp.host", "smtp..example.com", "smtp.host"),
    ("smtp.port", -1, "smtp.port"),
    ("smtp.security", None, "smtp.security"),
    ("settings.check_interval", 5, "settings.check_interval"),
    ("settings.check_interval", 86_401, "settings.check_interval"),
    ("settings.check_interval", "60", "settings.check_interval"),
    ("settings.folder", "", "settings.folder"),
    ("settings.folder", "In\x00box", "settings.folder"),
    ("settings.after_processing", "archive", "settings.after_processing"),
    ("settings.after_processing", "move:", "settings.after_processing"),
    ("settings.after_processing", "MOVE:x", "settings.after_processing"),
    ("settings.after_processing", "move:Archive*", "settings.after_processing"),
    ("settings.folder", "IN%", "settings.folder"),
    ("settings.from_name", "Evil\r\nBcc: x@example.com", "settings.from_name"),
    ("settings.from_name", "n" * 201, "settings.from_name"),
    ("settings.colour", "red", "settings.colour"),
    ("provider_id", "gmail", "provider_id"),
    ("tenant_id", "ten_other", "tenant_id"),
]


async def test_every_field_is_validated(tenant_client: httpx.AsyncClient, secret_watch: SecretWatch):
    failures = []
    for path, value, field in INVALID:
        body = with_path(mailbox_body(), path, value)
        secret_watch.add(body.get("password") if isinstance(body.get("password"), str) else "")
        response = await tenant_client.post("/v1/mailboxes", json=body)
        error = response.json()
        if response.status_code != 422 or error.get("field") != field or not error.get("hint"):
            failures.append((path, value, response.status_code, error))
        elif path.endswith(("extra", "colour")) or path in ("provider_id", "tenant_id"):
            if error["error"] != "unknown_field":
                failures.append((path, value, "expected unknown_field", error))
    oauth_with_password = mailbox_body(auth_method="oauth2")
    response = await tenant_client.post("/v1/mailboxes", json=oauth_with_password)
    if response.status_code != 422 or response.json().get("field") != "password":
        failures.append(("oauth2+password", None, response.status_code, response.json()))
    assert not failures, failures
    listed = (await tenant_client.get("/v1/mailboxes")).json()
    assert listed["items"] == []  # nothing invalid was stored


async def test_a_mailbox_is_disabled_and_enabled_again(
    tenant_client: httpx.AsyncClient, secret_watch: SecretWatch
):
    mailbox = await create(tenant_client, secret_watch)
    url = f"/v1/mailboxes/{mailbox['id']}"
    off = await tenant_client.patch(url, json={"enabled": False})
    assert off.status_code == 200 and off.json()["status"] == "disabled"
    listed = await tenant_client.get("/v1/mailboxes", params={"status": "disabled"})
    assert [m["id"] for m in listed.json()["items"]] == [mailbox["id"]]
    # a new password does not wake a disabled mailbox
    still = await tenant_client.patch(url, json={"password": "another-secret-9"})
    assert still.json()["status"] == "disabled"
    on = await tenant_client.patch(url, json={"enabled": True})
    assert on.status_code == 200 and on.json()["status"] == "pending"
    again = await tenant_client.patch(url, json={"enabled": True})  # idempotent
    assert again.json()["status"] == "pending"


async def test_patch_is_validated_too(tenant_client: httpx.AsyncClient, secret_watch: SecretWatch):
    mailbox = await create(tenant_client, secret_watch)
    url = f"/v1/mailboxes/{mailbox['id']}"
    for patch, field in [
        ({"email": "other@example.com"}, "email"),
        ({"password": None}, "password"),
        ({"imap": None}, "imap"),
        ({"imap": {"host": "imap.example.com"}}, "imap.port"),
        ({"settings": {"check_interval": None}}, "settings.check_interval"),
        ({"settings": {"after_processing": "delete-all"}}, "settings.after_processing"),
        ({"auth_method": "oauth2"}, "auth_method"),
        ({"enabled": None}, "enabled"),
        ({"enabled": "no"}, "enabled"),
    ]:
        response = await tenant_client.patch(url, json=patch)
        assert response.status_code == 422, (patch, response.text)
        assert response.json()["field"] == field, (patch, response.json())
    unchanged = (await tenant_client.get(url)).json()
    assert unchanged == mailbox


@pytest.mark.parametrize(
    "content, headers",
    [
        (b"{not json", {"content-type": "application/json"}),
        (b"[]", {"content-type": "application/json"}),
        (b"email=a", {"content-type": "application/x-www-form-urlencoded"}),
    ],
)
async def test_malformed_bodies_are_422(
    tenant_client: httpx.AsyncClient, content: bytes, headers: dict[str, str]
):
    response = await tenant_client.post("/v1/mailboxes", content=content, headers=headers)
    assert response.status_code == 422
    assert set(response.json()) >= {"error", "detail", "hint"}
