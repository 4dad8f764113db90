"""``settings.sending`` of /v1/mailboxes: given at creation, patched field by field, validated
(aliases are addresses, rates are whole numbers from 0 or null), and shown in every response."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fixtures.api import SecretWatch
from tests.integration.api.helpers import mailbox_body


async def _create(client: httpx.AsyncClient, watch: SecretWatch, sending: Any = ...) -> dict[str, Any]:
    body = mailbox_body()
    if sending is not ...:
        body["settings"]["sending"] = sending
    watch.add(body["password"])
    response = await client.post("/v1/mailboxes", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_sending_settings_are_created_patched_and_shown(
    tenant_client: httpx.AsyncClient, secret_watch: SecretWatch
) -> None:
    created = await _create(
        tenant_client,
        secret_watch,
        {"sent_copy": "never", "aliases": ["Help@Example.com", "help@example.com", "sales@example.com"]},
    )
    assert created["settings"]["sending"] == {
        "sent_copy": "never",
        "aliases": ["Help@example.com", "sales@example.com"],  # one address once, domain lower-cased
        "rate_per_minute": None,
        "rate_per_day": None,
    }
    url = f"/v1/mailboxes/{created['id']}"
    patched = await tenant_client.patch(url, json={"settings": {"sending": {"rate_per_minute": 30}}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["settings"]["sending"] == {**created["settings"]["sending"], "rate_per_minute": 30}
    again = await tenant_client.patch(
        url, json={"settings": {"sending": {"rate_per_minute": None, "rate_per_day": 0, "aliases": []}}}
    )
    assert again.json()["settings"]["sending"] == {
        "sent_copy": "never",
        "aliases": [],
        "rate_per_minute": None,
        "rate_per_day": 0,
    }
    assert (await tenant_client.get(url)).json()["settings"]["sending"] == again.json()["settings"]["sending"]
    # a patch of other settings keeps them
    other = await tenant_client.patch(url, json={"settings": {"check_interval": 300}})
    assert other.json()["settings"]["sending"] == again.json()["settings"]["sending"]


@pytest.mark.parametrize(
    ("sending", "field", "says"),
    [
        ({"sent_copy": "sometimes"}, "settings.sending.sent_copy", "auto"),
        ({"aliases": ["not an address"]}, "settings.sending.aliases.0", "not a valid email address"),
        ({"aliases": "help@example.com"}, "settings.sending.aliases", "list"),
        ({"rate_per_minute": -1}, "settings.sending.rate_per_minute", "greater than or equal to 0"),
        ({"rate_per_day": 1.5}, "settings.sending.rate_per_day", "integer"),
        ({"rate_per_day": "10"}, "settings.sending.rate_per_day", "integer"),
        ({"bcc_everything": True}, "settings.sending.bcc_everything", "unknown field"),
    ],
)
async def test_sending_settings_are_validated(
    tenant_client: httpx.AsyncClient,
    secret_watch: SecretWatch,
    sending: dict[str, Any],
    field: str,
    says: str,
) -> None:
    body = mailbox_body()
    body["settings"]["sending"] = sending
    refused = await tenant_client.post("/v1/mailboxes", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == field and says in refused.json()["detail"]

    created = await _create(tenant_client, secret_watch)
    patch = await tenant_client.patch(
        f"/v1/mailboxes/{created['id']}", json={"settings": {"sending": sending}}
    )
    assert patch.status_code == 422 and patch.json()["field"] == field, patch.text


@pytest.mark.parametrize("name", ["sent_copy", "aliases"])
async def test_a_patch_cannot_null_what_has_no_default(
    tenant_client: httpx.AsyncClient, secret_watch: SecretWatch, name: str
) -> None:
    created = await _create(tenant_client, secret_watch)
    url = f"/v1/mailboxes/{created['id']}"
    refused = await tenant_client.patch(url, json={"settings": {"sending": {name: None}}})
    assert refused.status_code == 422 and refused.json()["field"] == f"settings.sending.{name}"
    whole = await tenant_client.patch(url, json={"settings": {"sending": None}})
    assert whole.status_code == 422 and whole.json()["field"] == "settings.sending"
