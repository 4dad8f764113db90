"""Graph's push receiver through the real route: the validation handshake is echoed, and a
lifecycle notification (``missed``, ``reauthorizationRequired``, ``subscriptionRemoved``) is
recorded on the matching subscription row of the channel's mailbox only after authentication,
never on another tenant's row with the same subscription id; the connector clears what it
handled while a newer event stays."""

from __future__ import annotations

from datetime import timedelta

import httpx

from mailport.clock import utc_now
from mailport.push.subscriptions import Subscription, SubscriptionStore
from tests.integration.push.conftest import PushBed

KEY = "graph"


def lifecycle(secret: str, event: str, subscription_id: str) -> dict[str, object]:
    return {
        "value": [
            {
                "subscriptionId": subscription_id,
                "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z",
                "tenantId": "00000000-0000-0000-0000-000000000000",
                "clientState": secret,
                "lifecycleEvent": event,
            }
        ]
    }


async def _subscribed(bed: PushBed, tenant: str, email: str, remote_id: str) -> tuple[str, str]:
    mailbox = await bed.mailbox(tenant, email)
    channel = await bed.channel(tenant, mailbox.id, connector=KEY)
    await bed.services.subscriptions.save(
        Subscription(
            mailbox.id,
            "INBOX",
            KEY,
            remote_id,
            channel.id,
            "me/mailFolders('AQMk')/messages",
            utc_now() + timedelta(days=2),
            {"kept": 1},
        ),
        now=utc_now(),
    )
    return mailbox.id, channel.secret.reveal()


async def test_graph_handshake_is_echoed(http: httpx.AsyncClient, bed: PushBed):
    token = "Validation: Testing client application reachability for subscription Request-Id: 7"
    response = await http.post(f"/v1/push/{KEY}/pch_any", params={"validationToken": token})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == token


async def test_lifecycle_events_are_recorded_on_the_channels_subscription_only(
    http: httpx.AsyncClient, bed: PushBed
):
    tenant_a, tenant_b = await bed.tenant(), await bed.tenant()
    mine, secret = await _subscribed(bed, tenant_a, "a@example.com", "sub-shared-id")
    other, _ = await _subscribed(bed, tenant_b, "b@example.com", "sub-shared-id")
    channels = await bed.services.push.channels.for_mailbox(mine, KEY)
    url = f"/v1/push/{KEY}/{channels[0].id}"

    refused = await http.post(url, json=lifecycle("wrong-secret", "subscriptionRemoved", "sub-shared-id"))
    assert refused.status_code == 401
    row = await bed.services.subscriptions.get(mine, "INBOX")
    assert row is not None and row.lifecycle == {}

    for event in ("missed", "reauthorizationRequired"):
        response = await http.post(url, json=lifecycle(secret, event, "sub-shared-id"))
        assert response.status_code == 202, response.text
    row = await bed.services.subscriptions.get(mine, "INBOX")
    assert row is not None and set(row.lifecycle) == {"missed", "reauthorizationRequired"}
    assert row.state["kept"] == 1  # the connector's own state is untouched
    untouched = await bed.services.subscriptions.get(other, "INBOX")
    assert untouched is not None and untouched.lifecycle == {}
    assert (await bed.wakeups()).get(mine) == 2  # each notification also wakes the mailbox

    # a renewal saved meanwhile keeps the events; clearing what was handled keeps a newer one
    store: SubscriptionStore = bed.services.subscriptions
    await store.save(
        Subscription(
            mine, "INBOX", KEY, "sub-shared-id", channels[0].id, row.resource, row.expires_at, {"kept": 2}
        ),
        now=utc_now(),
    )
    handled = (await store.get(mine, "INBOX")).lifecycle  # type: ignore[union-attr]
    assert set(handled) == {"missed", "reauthorizationRequired"}
    response = await http.post(url, json=lifecycle(secret, "subscriptionRemoved", "sub-shared-id"))
    assert response.status_code == 202
    await store.clear_lifecycle(mine, "INBOX", handled, now=utc_now())
    left = await store.get(mine, "INBOX")
    assert left is not None and set(left.lifecycle) == {"subscriptionRemoved"} and left.state["kept"] == 2


async def test_a_body_that_is_not_a_graph_notification_is_refused(http: httpx.AsyncClient, bed: PushBed):
    for body in (b"not json", b'{"value": []}', b'{"value": [1]}', b"[]"):
        response = await http.post(
            f"/v1/push/{KEY}/pch_x", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, body
        assert response.json()["error"] == "push_invalid"
