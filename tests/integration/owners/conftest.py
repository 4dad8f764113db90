"""Two users of one host application, and a second tenant, each with real things to protect.

``world`` builds, through the API and the real Dovecot of the test bed: tenant ``acme`` with an
HS256 JWT verifier (``PUT /v1/tenants/{id}/jwt``, the tenant's own key) and two users, alice and
bob, each calling with a real JWT signed by PyJWT; every user has a mailbox it created itself
(messages in its inbox, a draft, a queued send), a contact and a group in its book, and an event
of its mailbox. A second tenant has a user named alice too (same ``sub``, another tenant)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from mailport.config import Settings
from mailport.events import append
from mailport.services import Services
from tests.fixtures.api import SecretWatch, TenantHandle, api_client, create_tenant
from tests.integration.owners.jwts import set_verifier
from tests.mailstack.dovecot import Dovecot
from tests.mailstack.smtp import SubmissionServer


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allowed_hosts": ["127.0.0.1"], "public_url": "https://mp.example"})


def message(subject: str, sender: str = "Carol <carol@example.test>") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "Reader <reader@example.test>"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.test>"
    msg.set_content(f"{subject}\n\nA body.\n")
    msg.add_attachment(b"a,b\r\n1,2\r\n", maintype="text", subtype="csv", filename="table.csv")
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@dataclass
class User:
    """One host-app user: its JWT client and what it made."""

    owner: str
    client: httpx.AsyncClient
    mailbox: dict[str, Any] = field(default_factory=dict)
    message: dict[str, Any] = field(default_factory=dict)  # an inbox listing item
    draft_ref: str = ""
    send_id: str = ""
    contact: dict[str, Any] = field(default_factory=dict)
    group: dict[str, Any] = field(default_factory=dict)
    event_id: str = ""

    @property
    def base(self) -> str:
        return f"/v1/mailboxes/{self.mailbox['id']}"

    def markers(self) -> list[str]:
        """Strings only this user's resources show: none may reach another user."""
        return [
            self.mailbox["id"],
            self.mailbox["email"],
            self.message["ref"],
            self.contact["id"],
            self.contact["email"],
            self.group["id"],
            self.event_id,
        ]


@dataclass
class World:
    tenant: TenantHandle
    tenant_client: httpx.AsyncClient  # acme's API key
    alice: User
    bob: User
    other_tenant_alice: User  # the second tenant's user with the same sub
    intruder: User | None = None  # who the isolation table is calling as

    @property
    def caller(self) -> User:
        assert self.intruder is not None
        return self.intruder

    @property
    def someone_else(self) -> str:
        """A user who is not the caller (bob names alice; the other tenant's alice names bob)."""
        return "bob" if self.caller.owner == "alice" else "alice"


async def fill(
    user: User, dovecot: Dovecot, smtp: SubmissionServer, services: Services, tenant_id: str
) -> None:
    """A mailbox the user's own token creates, and what hangs off it."""
    email, password = dovecot.dyn_user(f"{user.owner}{uuid.uuid4().hex[:8]}")
    made = await user.client.post(
        "/v1/mailboxes",
        json={
            "email": email,
            "auth_method": "password",
            "password": password,
            "imap": {"host": "127.0.0.1", "port": dovecot.imap_port, "security": "none"},
            "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "starttls"},
        },
    )
    assert made.status_code == 201, made.text
    user.mailbox = made.json()
    assert user.mailbox["owner"] == user.owner  # the token's user, without asking
    imap = await dovecot.client(email, password)
    try:
        for n in range(2):
            await imap.append("INBOX", message(f"{user.owner} message {n}"))
    finally:
        await imap.logout()
    listed = await user.client.get(f"{user.base}/messages")
    assert listed.status_code == 200, listed.text
    user.message = listed.json()["data"][0]
    draft = await user.client.post(
        f"{user.base}/drafts",
        json={"to": ["dave@example.test"], "subject": f"{user.owner} draft", "text": "x"},
    )
    assert draft.status_code == 201, draft.text
    user.draft_ref = draft.json()["ref"]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()  # stays queued: nothing is sent
    send = await user.client.post(
        f"{user.base}/send",
        json={"to": ["erin@example.test"], "subject": "later", "text": "x", "send_at": tomorrow},
    )
    assert send.status_code == 202, send.text
    user.send_id = send.json()["id"]
    contact = await user.client.post(
        "/v1/contacts", json={"email": f"friend-of-{user.owner}-{uuid.uuid4().hex[:6]}@example.test"}
    )
    assert contact.status_code == 201, contact.text
    user.contact = contact.json()
    group = await user.client.post("/v1/contacts/groups", json={"name": f"{user.owner}'s friends"})
    assert group.status_code == 201, group.text
    user.group = group.json()
    added = await user.client.post(
        f"/v1/contacts/groups/{user.group['id']}/members", json={"contacts": [user.contact["id"]]}
    )
    assert added.status_code == 200, added.text
    # an event of the mailbox, as its watcher appends them (no watcher runs in these tests)
    async with services.database.transaction() as conn:
        event = await append(
            conn,
            tenant_id=tenant_id,
            mailbox_id=user.mailbox["id"],
            type="mailbox.connected",
            payload={"mailbox_id": user.mailbox["id"], "email": user.mailbox["email"]},
            idempotency_key=f"test:{uuid.uuid4().hex}",
        )
    assert event is not None
    user.event_id = event.id
    pulled = await user.client.get("/v1/events", params={"mailbox_id": user.mailbox["id"], "consumer": "crm"})
    assert pulled.status_code == 200, pulled.text
    assert [e["id"] for e in pulled.json()["items"]] == [event.id]  # its own mailbox's event only
    acked = await user.client.post(
        "/v1/events/ack",
        json={"through": pulled.json()["next_cursor"], "consumer": "crm", "mailbox_id": user.mailbox["id"]},
    )
    assert acked.status_code == 200, acked.text


@pytest.fixture
async def world(
    app: FastAPI,
    services: Services,
    tenant: TenantHandle,
    tenant_client: httpx.AsyncClient,
    secret_watch: SecretWatch,
    dovecot: Dovecot,
    smtp: SubmissionServer,
) -> AsyncIterator[World]:
    minter = await set_verifier(tenant_client, tenant.id)
    other = await create_tenant(services)
    clients: list[httpx.AsyncClient] = []

    def user(owner: str, token: str) -> User:
        client = api_client(app, token, secret_watch)
        clients.append(client)
        return User(owner, client)

    async with api_client(app, other.api_key, secret_watch) as other_client:
        other_minter = await set_verifier(other_client, other.id)
    alice = user("alice", minter.token("alice", tid=tenant.id))
    bob = user("bob", minter.token("bob", tid=tenant.id))
    other_alice = user("alice", other_minter.token("alice", tid=other.id))
    for who, tenant_id in ((alice, tenant.id), (bob, tenant.id), (other_alice, other.id)):
        await fill(who, dovecot, smtp, services, tenant_id)
    try:
        yield World(tenant, tenant_client, alice, bob, other_alice)
    finally:
        for client in clients:
            await client.aclose()
