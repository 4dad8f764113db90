"""A key only ever sees its own tenant: another tenant's ids answer 404 on every route."""

from __future__ import annotations

import httpx

from tests.fixtures.api import NewTenantClient, SecretWatch
from tests.integration.api.helpers import mailbox_body


async def test_second_tenant_gets_404_on_every_route_for_the_first_tenants_mailbox(
    tenant_client: httpx.AsyncClient, new_tenant_client: NewTenantClient, secret_watch: SecretWatch
):
    body = mailbox_body()
    secret_watch.add(body["password"])
    mine = (await tenant_client.post("/v1/mailboxes", json=body)).json()
    _other, intruder = await new_tenant_client()
    url = f"/v1/mailboxes/{mine['id']}"

    attempts = {
        "GET": await intruder.get(url),
        "PATCH": await intruder.patch(url, json={"label": "pwned", "password": "attacker"}),
        "PATCH settings": await intruder.patch(url, json={"settings": {"after_processing": "delete"}}),
        "DELETE": await intruder.delete(url),
    }
    for route, response in attempts.items():
        assert response.status_code == 404, (route, response.text)
        assert response.json()["error"] == "not_found"
        assert mine["email"] not in response.text

    listed = (await intruder.get("/v1/mailboxes")).json()
    assert listed == {"items": [], "next_cursor": None}
    filtered = (await intruder.get("/v1/mailboxes", params={"purpose": "booking"})).json()
    assert filtered["items"] == []

    # the same email is free for the other tenant, and creating it does not touch ours
    theirs = await intruder.post("/v1/mailboxes", json=mailbox_body(email=mine["email"]))
    assert theirs.status_code == 201
    cross = await tenant_client.get(f"/v1/mailboxes/{theirs.json()['id']}")
    assert cross.status_code == 404

    assert (await tenant_client.get(url)).json() == mine  # untouched by every attempt above
