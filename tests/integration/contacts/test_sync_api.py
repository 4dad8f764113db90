"""``owner`` and ``settings.contacts`` of /v1/mailboxes (created, patched field by field,
validated, shown), ``GET|POST /v1/mailboxes/{id}/contacts[/sync]`` (state, requests, 409 when
off, tenant isolation), the worker taking a request made through the API (Dovecot), and a
failed run's error and retry time."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.contacts import schedule
from mailport.contacts.sync import ContactSync
from mailport.errors import InvalidCredentialsError, NotFoundError
from mailport.runtime import Runtime
from tests.fixtures.api import NewTenantClient, SecretWatch, TenantHandle
from tests.integration.api.helpers import mailbox_body
from tests.mailstack.dovecot import Dovecot, free_port

DEFAULTS = {
    "policy": "sent_and_received",
    "backfill_days": 365,
    "resync_hours": 24,
    "exclude_own_domain": False,
    "fold": True,
    "aliases": [],
    "folders": None,
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Dovecot listens on 127.0.0.1: the operator allows exactly that address."""
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"]})


async def _create(client: httpx.AsyncClient, watch: SecretWatch, **fields: Any) -> dict[str, Any]:
    body = mailbox_body()
    contacts = fields.pop("contacts", ...)
    if contacts is not ...:
        body["settings"]["contacts"] = contacts
    body.update(fields)
    watch.add(body["password"])
    response = await client.post("/v1/mailboxes", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_owner_and_contact_settings_are_created_patched_and_shown(
    tenant_client: httpx.AsyncClient, secret_watch: SecretWatch
) -> None:
    plain = await _create(tenant_client, secret_watch)
    assert plain["owner"] is None and plain["settings"]["contacts"] is None
    state = await tenant_client.get(f"/v1/mailboxes/{plain['id']}/contacts")
    assert state.json() == {"mailbox_id": plain["id"], "settings": None, "sync": None}

    created = await _create(
        tenant_client,
        secret_watch,
        owner="  user-42 ",
        contacts={
            "policy": "sent_only",
            "aliases": ["Me@Alias.example", "me@alias.example"],
            "backfill_days": 30,
        },
    )
    assert created["owner"] == "user-42"
    assert created["settings"]["contacts"] == {
        **DEFAULTS,
        "policy": "sent_only",
        "aliases": ["Me@alias.example"],
        "backfill_days": 30,
    }
    url = f"/v1/mailboxes/{created['id']}"
    shown = (await tenant_client.get(f"{url}/contacts")).json()
    assert shown["settings"] == created["settings"]["contacts"]
    sync = shown["sync"]
    assert sync["state"] == "pending" and sync["folders"] == {} and sync["last_error"] is None
    since = datetime.fromisoformat(sync["since"])
    assert abs(since - (datetime.now(UTC) - timedelta(days=30))) < timedelta(minutes=5)

    patched = await tenant_client.patch(
        url,
        json={"owner": "user-7", "settings": {"contacts": {"resync_hours": 6, "folders": ["INBOX", "Sent"]}}},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["owner"] == "user-7"
    assert patched.json()["settings"]["contacts"] == {
        **created["settings"]["contacts"],
        "resync_hours": 6,
        "folders": ["INBOX", "Sent"],
    }
    assert (await tenant_client.get(url)).json()["settings"]["contacts"] == patched.json()["settings"][
        "contacts"
    ]
    other = await tenant_client.patch(url, json={"settings": {"check_interval": 300}, "owner": None})
    assert other.json()["settings"]["contacts"] == patched.json()["settings"]["contacts"]
    assert other.json()["owner"] is None

    off = await tenant_client.patch(url, json={"settings": {"contacts": {"policy": "off"}}})
    assert off.json()["settings"]["contacts"]["policy"] == "off"
    stopped = (await tenant_client.get(f"{url}/contacts")).json()["sync"]
    assert stopped["state"] == "idle" and stopped["next_at"] is None
    refused = await tenant_client.post(f"{url}/contacts/sync", json={})
    assert refused.status_code == 409 and refused.json()["error"] == "contacts_not_enabled"

    gone = await tenant_client.patch(url, json={"settings": {"contacts": None}})
    assert gone.json()["settings"]["contacts"] is None
    # switched on with the defaults for what is not sent
    again = await tenant_client.patch(url, json={"settings": {"contacts": {}}})
    assert again.json()["settings"]["contacts"] == DEFAULTS
    assert (await tenant_client.get(f"{url}/contacts")).json()["sync"]["state"] == "pending"


@pytest.mark.parametrize(
    ("contacts", "field", "says"),
    [
        ({"policy": "everyone"}, "settings.contacts.policy", "sent_and_received"),
        ({"backfill_days": 0}, "settings.contacts.backfill_days", "greater than or equal to 1"),
        ({"backfill_days": 3651}, "settings.contacts.backfill_days", "less than or equal to 3650"),
        ({"backfill_days": "30"}, "settings.contacts.backfill_days", "integer"),
        ({"resync_hours": 0}, "settings.contacts.resync_hours", "greater than or equal to 1"),
        ({"resync_hours": 721}, "settings.contacts.resync_hours", "less than or equal to 720"),
        ({"aliases": ["not an address"]}, "settings.contacts.aliases.0", "not a valid email address"),
        ({"folders": ["Archive/*"]}, "settings.contacts.folders.0", "wildcards"),
        ({"folders": "INBOX"}, "settings.contacts.folders", "list"),
        ({"fold": "yes"}, "settings.contacts.fold", "boolean"),
        ({"everyone": True}, "settings.contacts.everyone", "unknown field"),
    ],
)
async def test_contact_settings_are_validated(
    tenant_client: httpx.AsyncClient,
    secret_watch: SecretWatch,
    contacts: dict[str, Any],
    field: str,
    says: str,
) -> None:
    body = mailbox_body()
    body["settings"]["contacts"] = contacts
    refused = await tenant_client.post("/v1/mailboxes", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == field and says in refused.json()["detail"], refused.json()

    created = await _create(tenant_client, secret_watch)
    patch = await tenant_client.patch(
        f"/v1/mailboxes/{created['id']}", json={"settings": {"contacts": contacts}}
    )
    assert patch.status_code == 422 and patch.json()["field"] == field, patch.text


@pytest.mark.parametrize(
    ("owner", "says"), [("x" * 201, "at most 200"), ("a\nb", "line breaks"), (7, "string")]
)
async def test_an_owner_is_one_line_of_at_most_200_characters(
    tenant_client: httpx.AsyncClient, secret_watch: SecretWatch, owner: Any, says: str
) -> None:
    refused = await tenant_client.post("/v1/mailboxes", json=mailbox_body(owner=owner))
    assert refused.status_code == 422 and refused.json()["field"] == "owner", refused.text
    assert says in refused.json()["detail"]
    created = await _create(tenant_client, secret_watch)
    patch = await tenant_client.patch(f"/v1/mailboxes/{created['id']}", json={"owner": owner})
    assert patch.status_code == 422 and patch.json()["field"] == "owner"
    blank = await tenant_client.patch(f"/v1/mailboxes/{created['id']}", json={"owner": "   "})
    assert blank.json()["owner"] is None


async def test_a_sync_is_requested_only_of_a_harvesting_mailbox_of_ones_own_tenant(
    tenant_client: httpx.AsyncClient,
    secret_watch: SecretWatch,
    new_tenant_client: NewTenantClient,
    services: Services,
) -> None:
    plain = await _create(tenant_client, secret_watch)
    refused = await tenant_client.post(f"/v1/mailboxes/{plain['id']}/contacts/sync")
    assert refused.status_code == 409 and refused.json()["error"] == "contacts_not_enabled"
    assert "settings.contacts" in refused.json()["hint"]

    created = await _create(tenant_client, secret_watch, contacts={})
    url = f"/v1/mailboxes/{created['id']}/contacts"
    async with services.database.transaction() as conn:  # as a finished run leaves it
        claimed = await schedule.claim(
            conn, created["id"], "x", now=datetime.now(UTC), until=datetime.now(UTC)
        )
        assert claimed is not None
        await schedule.progress(
            conn,
            created["id"],
            "x",
            folders={"INBOX": datetime(2026, 11, 1, tzinfo=UTC)},
            messages=3,
            now=datetime.now(UTC),
            until=datetime.now(UTC),
        )
        await schedule.finish(conn, created["id"], "x", now=datetime.now(UTC), next_at=None)
    accepted = await tenant_client.post(f"{url}/sync", json={})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["sync"]["state"] == "pending"
    assert accepted.json()["sync"]["folders"] == {"INBOX": "2026-11-01T00:00:00Z"}  # from where it was
    assert services.contacts_wakeup.is_set()
    full = await tenant_client.post(f"{url}/sync", json={"full": True})
    assert full.status_code == 202 and full.json()["sync"]["folders"] == {}  # from the period's start
    bad = await tenant_client.post(f"{url}/sync", json={"full": "yes"})
    assert bad.status_code == 422 and bad.json()["field"] == "full"

    _other, other_client = await new_tenant_client()
    for response in (await other_client.get(url), await other_client.post(f"{url}/sync", json={})):
        assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert (await tenant_client.get("/v1/mailboxes/mbx_nope/contacts")).status_code == 404


async def test_the_worker_runs_what_the_api_asked_for(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient, dovecot: Dovecot
) -> None:
    user, password = dovecot.dyn_user(f"c{uuid.uuid4().hex[:10]}")
    client = await dovecot.client(user, password)
    raw = b"From: Rita <rita@example.org>\r\nTo: me@example.test\r\nMessage-ID: <r1@x>\r\n\r\nhi\r\n"
    await client.append("INBOX", raw, internaldate=datetime.now(UTC) - timedelta(days=3))
    await client.logout()
    body = {
        "email": user,
        "auth_method": "password",
        "password": password,
        "imap": {"host": "127.0.0.1", "port": dovecot.imap_port, "security": "none"},
        "settings": {"contacts": {"backfill_days": 7}},
    }
    runtime = Runtime(services, watchers=False, delivery=False, janitor=False, sending=False)
    await runtime.start()
    try:
        created = await tenant_client.post("/v1/mailboxes", json=body)
        assert created.status_code == 201, created.text
        url = f"/v1/mailboxes/{created.json()['id']}/contacts"
        for _ in range(200):
            sync = (await tenant_client.get(url)).json()["sync"]
            if sync["state"] == "idle":
                break
            await asyncio.sleep(0.05)
    finally:
        await runtime.stop()
    assert sync["state"] == "idle" and sync["messages"] == 1, sync
    assert set(sync["folders"]) == {
        "INBOX"
    }  # Sent, Drafts, Trash, Junk: nothing in Sent; the rest never read
    next_at = datetime.fromisoformat(sync["next_at"])
    assert timedelta(hours=23) < next_at - datetime.fromisoformat(sync["finished_at"]) <= timedelta(hours=24)


async def test_a_failed_run_says_why_and_when_it_is_tried_again(
    services: Services, tenant: TenantHandle, dovecot: Dovecot
) -> None:
    from mailport.contacts.models import ContactSettings
    from mailport.crypto import Secret
    from mailport.mailboxes.models import AuthMethod, NewMailbox, ProcessingSettings, Security, ServerSettings

    now = datetime(2026, 12, 1, tzinfo=UTC)
    sync = ContactSync(services.events, services.mailboxes, services.connector, clock=lambda: now)
    user, _password = dovecot.dyn_user(f"c{uuid.uuid4().hex[:10]}")

    async def mailbox(port: int, password: str) -> str:
        created = await services.mailboxes.create(
            tenant.id,
            NewMailbox(
                email=f"{uuid.uuid4().hex[:6]}-{user}",
                auth_method=AuthMethod.PASSWORD,
                imap=ServerSettings("127.0.0.1", port, Security.NONE, user),
                password=Secret(password),
                settings=ProcessingSettings(contacts=ContactSettings(resync_hours=6)),
            ),
        )
        return created.id

    wrong = await mailbox(dovecot.imap_port, "not-the-password")
    with pytest.raises(InvalidCredentialsError):
        await sync.run(wrong)
    async with services.database.connect() as conn:
        state = await schedule.get(conn, wrong)
    assert state is not None and state.state == schedule.FAILED
    assert state.last_error is not None and state.last_error["code"] == "invalid_credentials"
    assert state.last_error["attempts"] == 1
    assert state.next_at == now + timedelta(hours=6)  # a person must act: at the usual time

    closed = await mailbox(free_port(), "x")
    for attempt in (1, 2):
        with pytest.raises(Exception) as raised:
            await sync.run(closed)
        async with services.database.connect() as conn:
            state = await schedule.get(conn, closed)
        assert state is not None and state.last_error is not None
        assert state.last_error["code"] == getattr(raised.value, "code", None)
        assert state.last_error["attempts"] == attempt
        assert state.next_at is not None
        assert timedelta(seconds=0) < state.next_at - now <= timedelta(seconds=60 * 2 ** (attempt - 1))


async def test_an_owner_sees_the_harvest_of_its_own_mailboxes_only(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient, secret_watch: SecretWatch
) -> None:
    """What issue 19's callers with a user's token get: another owner's mailbox is 404."""
    anns = await _create(tenant_client, secret_watch, owner="ann", contacts={})
    tenants = await _create(tenant_client, secret_watch, contacts={})
    sync = services.contact_sync
    mailbox, state = await sync.state(tenant.id, anns["id"], owner="ann")
    assert mailbox.id == anns["id"] and state is not None
    assert (await sync.request(tenant.id, anns["id"], owner="ann")).state == "pending"
    assert (await sync.state(tenant.id, tenants["id"], owner=""))[0].id == tenants["id"]  # the unowned
    for mailbox_id, owner in ((anns["id"], "ben"), (anns["id"], ""), (tenants["id"], "ann")):
        with pytest.raises(NotFoundError):
            await sync.state(tenant.id, mailbox_id, owner=owner)
        with pytest.raises(NotFoundError):
            await sync.request(tenant.id, mailbox_id, owner=owner)
