"""Listing folders over IMAP against the real Dovecot: the bed's (prefix "" and "/") and the
dotted one (``INBOX.`` and "."), with a non-ASCII folder made by the test, counts after mail was
delivered, roles from SPECIAL-USE; through ``LIST … RETURN (STATUS …)`` and through the older
LIST + LSUB + STATUS path (the server's LIST-STATUS ignored). A connector without folders
refuses with ``unsupported_feature``."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from mailport.bootstrap import Services
from mailport.connectors.base import Feature
from mailport.connectors.folders import Folder, Role
from mailport.connectors.imap import ImapConnector
from mailport.errors import UnsupportedFeatureError
from tests.connectors.conftest import SCOPE, Harness, _mailbox
from tests.connectors.fake import FakeServer
from tests.integration.sync.conftest import make_message
from tests.mailstack.dovecot import Dovecot

UMLAUT = "Größe & Ärger"


async def _folders(
    services: Services, server: Dovecot, *, prefix: str, ignore: tuple[str, ...]
) -> list[Folder]:
    user, password = server.dyn_user(f"f{uuid.uuid4().hex[:10]}")
    path = prefix + UMLAUT
    client = await server.client(user, password)
    try:
        await client.create(path)
        for n in range(3):
            await client.append(path, make_message(f"m{n}"), flags=["\\Seen"] if n == 0 else [])
        await client.append("INBOX", make_message("inbox"))
    finally:
        await client.logout()
    mailbox = await _mailbox(services, "imap", user, password, server.imap_port)
    connector = ImapConnector(mailbox, ignore_capabilities=ignore)
    await connector.connect()
    try:
        return await connector.list_folders()
    finally:
        await connector.disconnect()


@pytest.mark.parametrize("ignore", [(), ("LIST-STATUS", "LIST-EXTENDED")], ids=["list-status", "status-each"])
@pytest.mark.parametrize("dotted", [False, True], ids=["standard", "dotted"])
async def test_folders_with_roles_counts_and_decoded_names(
    services: Services, request: pytest.FixtureRequest, dotted: bool, ignore: tuple[str, ...]
) -> None:
    server: Dovecot = request.getfixturevalue("dovecot_dotted" if dotted else "dovecot")
    prefix, delimiter = ("INBOX.", ".") if dotted else ("", "/")
    folders = await _folders(services, server, prefix=prefix, ignore=ignore)
    by_path = {f.path: f for f in folders}

    assert folders[0].path == "INBOX" and folders[0].role is Role.INBOX
    assert (folders[0].messages, folders[0].unseen) == (1, 1)
    made = by_path[prefix + UMLAUT]
    assert made.name == UMLAUT and made.delimiter == delimiter
    assert (made.messages, made.unseen) == (3, 2)
    assert made.role is None and made.selectable
    roles = {f.role: f.path for f in folders if f.role is not None}
    assert roles == {
        Role.INBOX: "INBOX",
        Role.SENT: prefix + "Sent",
        Role.DRAFTS: prefix + "Drafts",
        Role.TRASH: prefix + "Trash",
        Role.JUNK: prefix + "Junk",
    }
    assert by_path[prefix + "Sent"].subscribed  # auto = subscribe in the bed's configuration
    assert by_path[prefix + "Sent"].messages == 0


async def test_every_connector_lists_its_scope_with_counts(harness: Harness) -> None:
    await harness.deliver("one", "two")
    folders = await harness.connector.list_folders()
    assert folders[0].path == "INBOX" and folders[0].role is Role.INBOX
    scope = next(f for f in folders if f.path == SCOPE)
    assert (scope.name, scope.messages, scope.unseen, scope.role) == (SCOPE, 2, 2, None)


async def test_a_connector_without_folders_refuses(services: Services, fake_connector: FakeServer) -> None:
    fake_connector.register("fake_flat", frozenset({Feature.FLAGS}))
    # a connector without folders watches its INBOX only (mailboxes.service.check_folders)
    mailbox = await _mailbox(services, "fake_flat", "flat@example.test", "pw", 993, folder="INBOX")
    fake_connector[mailbox.email].features = frozenset({Feature.FLAGS})
    connector = services.connector(mailbox)
    await connector.connect()
    try:
        with pytest.raises(UnsupportedFeatureError):
            await connector.list_folders()
    finally:
        await asyncio.wait_for(connector.disconnect(), 5)
