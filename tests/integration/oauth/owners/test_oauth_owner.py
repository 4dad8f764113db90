"""OAuth sign-in started by a user's token (issue 19): the signed state carries the user, so the
callback creates the mailbox for that user, and never reconnects (or names) a mailbox of
someone else with the same address; a device sign-in keeps the user on its flow, which only that
user (and the tenant key) sees."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.fixtures.api import SecretWatch, TenantHandle, api_client
from tests.integration.oauth.test_api import device_outcome, sign_in
from tests.integration.oauth.test_device import approve
from tests.integration.owners.jwts import set_verifier


@pytest.fixture
async def ivan(
    api_app: FastAPI, api_tenant: TenantHandle, client: httpx.AsyncClient, secret_watch: SecretWatch
) -> AsyncIterator[httpx.AsyncClient]:
    """The token of ivan, a user of the host application of ``api_tenant``."""
    minter = await set_verifier(client, api_tenant.id)
    async with api_client(api_app, minter.token("ivan", tid=api_tenant.id), secret_watch) as user:
        yield user


async def test_a_users_sign_in_creates_the_mailbox_for_that_user(
    ivan: httpx.AsyncClient, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    done = await browser.get(await sign_in(ivan, browser, "google", email="ivan@example.test"))
    assert done.status_code == 200, done.text
    mailbox = done.json()["mailbox"]
    assert done.json()["created"] is True and mailbox["owner"] == "ivan"
    assert {m["id"] for m in (await ivan.get("/v1/mailboxes")).json()["items"]} == {mailbox["id"]}

    # reconnecting its own mailbox works; the tenant's own mailbox is not its to reconnect
    again = await browser.get(await sign_in(ivan, browser, "google", mailbox_id=mailbox["id"]))
    assert again.status_code == 200 and again.json()["created"] is False, again.text
    assert again.json()["mailbox"]["owner"] == "ivan"
    tenants = await client.post(
        "/v1/mailboxes",
        json={"email": "jane@example.test", "auth_method": "oauth2", "connector": "gmail_api"},
    )
    assert tenants.status_code == 201, tenants.text
    refused = await ivan.post("/v1/oauth/google/authorize", json={"mailbox_id": tenants.json()["id"]})
    assert refused.status_code == 404 and refused.json()["error"] == "not_found", refused.text


async def test_a_users_sign_in_as_an_address_someone_else_has_changes_nothing(
    ivan: httpx.AsyncClient, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    imap = {"host": "imap.example.com", "port": 993, "security": "ssl"}
    theirs = await client.post(
        "/v1/mailboxes", json={"email": "kim@example.test", "auth_method": "oauth2", "imap": imap}
    )
    assert theirs.status_code == 201, theirs.text
    answer = await browser.get(await sign_in(ivan, browser, "google", email="kim@example.test"))
    assert answer.status_code == 409 and answer.json()["error"] == "conflict", answer.text
    assert theirs.json()["id"] not in answer.text
    after = (await client.get(f"/v1/mailboxes/{theirs.json()['id']}")).json()
    assert after["oauth"] is None and after["owner"] is None  # its tokens were not stored there


async def test_a_users_device_sign_in_creates_the_mailbox_for_that_user(
    client: httpx.AsyncClient,
    api_app: FastAPI,
    api_tenant: TenantHandle,
    secret_watch: SecretWatch,
    idp: object,
) -> None:
    minter = await set_verifier(client, api_tenant.id)
    async with (
        api_client(api_app, minter.token("ivan", tid=api_tenant.id), secret_watch) as ivan,
        api_client(api_app, minter.token("jo", tid=api_tenant.id), secret_watch) as jo,
    ):
        started = await ivan.post("/v1/oauth/microsoft/device", json={"purpose": "phone"})
        assert started.status_code == 201, started.text
        flow = started.json()
        hidden = await jo.get(f"/v1/oauth/device/{flow['flow_id']}")
        assert hidden.status_code == 404 and hidden.json()["error"] == "not_found", hidden.text
        approve(idp, flow["user_code"], email="ivan.phone@example.test")  # type: ignore[arg-type]
        status = await device_outcome(ivan, flow["flow_id"])
        assert status["status"] == "complete", status
        mailbox = (await ivan.get(f"/v1/mailboxes/{status['mailbox_id']}")).json()
        assert mailbox["owner"] == "ivan" and mailbox["email"] == "ivan.phone@example.test"
    assert (await client.get(f"/v1/oauth/device/{flow['flow_id']}")).json()["status"] == "complete"
