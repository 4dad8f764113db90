"""The Gmail fixtures wire a mailbox exactly as production does: the providers file points
``google.apis.gmail_api`` at the fake, ``Services.connector`` hands the connector that base URL
and the mailbox's token manager, and the fake accepts the IdP's tokens (refreshed through the
IdP when the fake refuses one)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailport.bootstrap import Services
from mailport.config import Settings
from mailport.connectors import registry
from mailport.connectors.api_http import ApiHttp
from mailport.connectors.base import Connector, Feature
from mailport.connectors.gmail import GmailClient
from mailport.mailboxes.models import Mailbox
from tests.fakes.gmail import GmailFake, make_message
from tests.fixtures.gmail import connect_gmail_mailbox
from tests.mailstack.idp import MockIdP

CONTEXTS: list[registry.ConnectorContext] = []


class _Captured(Exception):
    pass


@pytest.fixture
def gmail_registered() -> Iterator[None]:
    """Capture the context ``Services.connector`` builds; a stand-in registration only when the
    real ``gmail_api`` connector is not in this tree."""

    original = registry._CONNECTORS.get("gmail_api")
    features = original.capabilities if original else frozenset({Feature.FOLDERS})

    def capture(mailbox: Mailbox, context: registry.ConnectorContext) -> Connector:
        CONTEXTS.append(context)
        raise _Captured

    registry.register("gmail_api", capture, features)
    try:
        yield
    finally:
        if original is not None:
            registry._CONNECTORS["gmail_api"] = original
        else:
            registry.unregister("gmail_api")


async def test_a_connected_gmail_mailbox_reaches_the_fake_with_its_own_tokens(
    gmail_settings: Settings, services: Services, idp: MockIdP, gmail_fake: GmailFake, gmail_registered: None
) -> None:
    mailbox, account = await connect_gmail_mailbox(services, idp, gmail_fake)
    account.add_message(make_message(subject="hello"))
    assert mailbox.connector == "gmail_api" and mailbox.imap is None and mailbox.smtp is None
    with pytest.raises(_Captured):
        services.connector(mailbox)
    context = CONTEXTS.pop()
    assert context.api is not None and context.api.base_url == gmail_fake.url
    assert context.api.pubsub_url == gmail_fake.url
    assert context.guard is not None and context.token_source is not None
    gmail_fake.fail(401, email=mailbox.email)  # the fake refuses the first token: one refresh at the IdP
    async with ApiHttp(
        context.api.base_url,
        guard=context.guard,
        token_source=context.token_source,
        force_refresh=context.force_refresh,
        connector="gmail_api",
    ) as http:
        client = GmailClient(http)
        profile = await client.profile()
        assert profile.email == mailbox.email and profile.messages_total == 1
        assert http.requests_made == 2
    assert idp.state.refresh_grants.get(mailbox.email) == 1
