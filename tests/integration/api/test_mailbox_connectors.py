"""/v1/mailboxes and connectors: the response names the mailbox's connector (read-only), and an
after-processing action its connector does not declare is refused with 422
``unsupported_feature`` and a hint, on create and on PATCH."""

from __future__ import annotations

import httpx
import pytest

from mailport.bootstrap import Services
from mailport.connectors.base import Feature
from mailport.crypto import Secret
from mailport.errors import UnsupportedFeatureError
from mailport.mailboxes.models import AuthMethod, NewMailbox, ProcessingSettings, Security, ServerSettings
from tests.connectors.fake import FakeServer
from tests.fixtures.api import SecretWatch, TenantHandle
from tests.integration.api.helpers import mailbox_body


def _new(after: str) -> NewMailbox:
    return NewMailbox(
        email="pop@example.test",
        auth_method=AuthMethod.PASSWORD,
        imap=ServerSettings("imap.example.com", 993, Security.SSL),
        password=Secret("pw"),
        settings=ProcessingSettings(after_processing=after),
        connector="fake_pop",
    )


@pytest.fixture
def no_folders(fake_connector: FakeServer) -> None:
    """``fake_pop``: a connector that can only mark messages read (no folders, no deleting)."""
    fake_connector.register("fake_pop", frozenset({Feature.FLAGS}))


async def test_the_response_names_the_connector_and_a_request_names_only_a_known_one(
    tenant_client: httpx.AsyncClient, secret_watch: SecretWatch
) -> None:
    body = mailbox_body()
    secret_watch.add(body["password"])
    created = await tenant_client.post("/v1/mailboxes", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["connector"] == "imap"
    sneaky = await tenant_client.post(
        "/v1/mailboxes", json={**mailbox_body(email="b@example.com"), "connector": "x"}
    )
    assert sneaky.status_code == 422 and sneaky.json()["field"] == "connector"
    assert sneaky.json()["detail"] == "connector: unknown connector 'x'"  # imap, gmail_api, graph only
    patched = await tenant_client.patch(f"/v1/mailboxes/{created.json()['id']}", json={"connector": "x"})
    assert patched.status_code == 422


async def test_an_action_the_connector_cannot_do_is_refused_on_create_and_patch(
    services: Services, tenant: TenantHandle, tenant_client: httpx.AsyncClient, no_folders: None
) -> None:
    with pytest.raises(UnsupportedFeatureError) as refused:
        await services.mailboxes.create(tenant.id, _new("move:Done"))
    assert refused.value.http_status == 422 and "fake_pop" in refused.value.message
    mailbox = await services.mailboxes.create(tenant.id, _new("mark_read"))
    for action in ("move:Done", "delete"):
        response = await tenant_client.patch(
            f"/v1/mailboxes/{mailbox.id}", json={"settings": {"after_processing": action}}
        )
        assert response.status_code == 422, response.text
        error = response.json()
        assert error["error"] == "unsupported_feature"
        assert "fake_pop" in error["detail"] and "flags" in error["hint"]
    unchanged = (await tenant_client.get(f"/v1/mailboxes/{mailbox.id}")).json()
    assert (unchanged["connector"], unchanged["settings"]["after_processing"]) == ("fake_pop", "mark_read")
    allowed = await tenant_client.patch(
        f"/v1/mailboxes/{mailbox.id}", json={"settings": {"after_processing": "none"}}
    )
    assert allowed.status_code == 200, allowed.text
