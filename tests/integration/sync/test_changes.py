"""Changes made on the server as events, the whole way, on SQLite and PostgreSQL: another IMAP
client changes flags (seen, flagged, a keyword), expunges and creates/deletes folders while a
watcher idles on Dovecot; ``message.updated`` / ``message.deleted`` / ``folder.created`` /
``folder.deleted`` reach the webhook endpoint that lists them and not the one with ``events``
null; a restart in between neither loses nor repeats a change (with QRESYNC, and with a snapshot
when the server's QRESYNC and CONDSTORE are ignored); a tenant that did not opt in costs no
change check at all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mailport.bootstrap import Services
from mailport.connectors.base import MessageRef
from mailport.connectors.imap import ImapConnector
from mailport.delivery.schemas import WebhookCreate
from mailport.events import Event
from mailport.sync import Orchestrator, WatcherOptions
from mailport.sync import repository as sync_repo
from tests.fixtures.webhook_receiver import MakeDispatcher, MakeReceiver
from tests.integration.sync.conftest import Bed, all_events, make_message, wait_for
from tests.mailstack.dovecot import Dovecot

CHANGE_TYPES = ["message.updated", "message.deleted", "folder.created", "folder.deleted"]
OPTIONS = WatcherOptions(backoff_base=0.2, backoff_cap=1.0, auth_retry_seconds=600, folder_interval=1.0)


@pytest.fixture
async def hooked(
    delivery_services: Services, dovecot: Dovecot, password_user: tuple[str, str]
) -> AsyncIterator[Bed]:
    tenant, _key = await delivery_services.tenants.create_tenant("changes")
    yield Bed(delivery_services, dovecot, password_user[0], password_user[1], tenant.id)


async def _idling(orchestrator: Orchestrator, mailbox_id: str) -> None:
    async def idling() -> bool:
        watcher = orchestrator.watchers.get(mailbox_id)
        return watcher is not None and watcher.status.state == "connected" and watcher.status.push

    await wait_for(idling, timeout=10)


async def _streaming(bed: Bed, mailbox_id: str, stream: str = "scope:INBOX") -> None:
    """Wait until the watcher has started the change stream (changes before it are not reported)."""

    async def started() -> bool:
        async with bed.services.database.connect() as conn:
            return await sync_repo.get_change_token(conn, mailbox_id, stream) is not None

    await wait_for(started, timeout=10)


async def _changed(bed: Bed, mailbox_id: str) -> list[Event]:
    found = await all_events(bed.services, mailbox_id=mailbox_id)
    return [e for e in found if e.type in CHANGE_TYPES]


async def _other(bed: Bed, *, flag: tuple[int, str, ...] | None = None, expunge: int | None = None) -> None:
    client = await bed.imap()
    try:
        await client.select("INBOX")
        if flag is not None:
            await client.store([flag[0]], list(flag[1:]))
        if expunge is not None:
            await client.store([expunge], ["\\Deleted"])
            await client.expunge([expunge])
    finally:
        await client.logout()


async def test_changes_reach_the_endpoint_that_lists_them_and_not_the_one_for_every_type(
    hooked: Bed, make_receiver: MakeReceiver, make_dispatcher: MakeDispatcher
) -> None:
    bed = hooked
    plain, listing = make_receiver(), make_receiver()
    await bed.services.webhooks.create(bed.tenant_id, WebhookCreate(url=plain.url))
    await bed.services.webhooks.create(bed.tenant_id, WebhookCreate(url=listing.url, events=CHANGE_TYPES))  # type: ignore[arg-type]
    for n in range(2):
        await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message(f"before {n}"))
    mailbox = await bed.add_mailbox()
    await make_dispatcher()
    orchestrator = bed.orchestrator(options=OPTIONS)
    await orchestrator.start()
    try:
        await _idling(orchestrator, mailbox.id)
        await plain.wait_for(1, timeout=5)  # mailbox.connected
        await _streaming(bed, mailbox.id)
        await _streaming(bed, mailbox.id, "folders")
        await _other(bed, flag=(1, "\\Seen", "\\Flagged", "$Work"))
        await _other(bed, expunge=2)
        client = await bed.imap()
        try:
            await client.create("Größe")
        finally:
            await client.logout()
        received = await listing.wait_for(3, timeout=10)
        by_type = {r.json()["type"]: r.json() for r in received}
        assert set(by_type) == {"message.updated", "message.deleted", "folder.created"}
        updated = by_type["message.updated"]["data"]
        assert updated["flags"] == ["flagged", "seen", "$Work"] and updated["folder"] == "INBOX"
        ref = MessageRef.decode(updated["ref"])
        assert (ref.scope, ref.item) == ("INBOX", "1")
        assert updated["source"]["imap"]["uid"] == 1 and updated["source"]["imap"]["modseq"] > 0
        deleted = by_type["message.deleted"]["data"]
        assert deleted["source"]["imap"]["uid"] == 2 and "flags" not in deleted
        created = by_type["folder.created"]["data"]
        assert (created["path"], created["name"], created["role"]) == ("Größe", "Größe", None)
        key = by_type["message.deleted"]["idempotency_key"]
        assert key == f"del:{mailbox.id}:INBOX:{ref.epoch}:2"

        client = await bed.imap()
        try:
            await client.delete("Größe")
        finally:
            await client.logout()
        gone = (await listing.wait_for(4, timeout=10))[3].json()
        assert gone["type"] == "folder.deleted" and gone["data"]["path"] == "Größe"
        await asyncio.sleep(0.5)
        assert {r.json()["type"] for r in plain.requests} == {"mailbox.connected", "message.received"}
    finally:
        await orchestrator.stop()


def _factory(ignore: tuple[str, ...]) -> Any:
    return lambda mailbox: ImapConnector(mailbox, ignore_capabilities=ignore)


@pytest.mark.parametrize(
    "ignore", [(), ("QRESYNC",), ("QRESYNC", "CONDSTORE")], ids=["qresync", "condstore", "snapshot"]
)
async def test_a_restart_in_between_neither_loses_nor_repeats(bed: Bed, ignore: tuple[str, ...]) -> None:
    await bed.services.webhooks.create(
        bed.tenant_id,
        WebhookCreate(url="http://127.0.0.1:9/hook", events=["message.updated", "message.deleted"]),  # type: ignore[list-item]
    )
    for n in range(3):
        await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message(f"m{n}"))
    mailbox = await bed.add_mailbox()
    orchestrator = bed.orchestrator(options=OPTIONS, connector_factory=_factory(ignore))
    await orchestrator.start()
    try:
        await _idling(orchestrator, mailbox.id)
        await _streaming(bed, mailbox.id)
        await _other(bed, flag=(1, "\\Seen"))
        await wait_for(lambda: _changed(bed, mailbox.id))
    finally:
        await orchestrator.stop()
    await _other(bed, flag=(2, "\\Flagged"))  # while nobody watches
    await _other(bed, expunge=3)
    orchestrator = bed.orchestrator(options=OPTIONS, connector_factory=_factory(ignore))
    await orchestrator.start()
    try:

        async def three() -> list[Event]:
            found = await _changed(bed, mailbox.id)
            return found if len(found) >= 3 else []

        found = await wait_for(three)
        await asyncio.sleep(0.5)
        found = await _changed(bed, mailbox.id)
        summary = [(e.type, e.payload["source"]["imap"]["uid"], e.payload.get("flags")) for e in found]
        assert summary == [
            ("message.updated", 1, ["seen"]),
            ("message.updated", 2, ["flagged"]),
            ("message.deleted", 3, None),
        ]
        # ingested (they arrived within the first sync's minute): the message.received's id
        assert all(e.payload["message_id"].startswith("msg_") for e in found)
    finally:
        await orchestrator.stop()


async def test_a_tenant_without_opt_in_costs_no_change_check(bed: Bed) -> None:
    await bed.services.webhooks.create(bed.tenant_id, WebhookCreate(url="http://127.0.0.1:9/hook"))
    await asyncio.to_thread(bed.dovecot.deliver, bed.user, make_message("one"))
    mailbox = await bed.add_mailbox()
    orchestrator = bed.orchestrator(options=OPTIONS)
    await orchestrator.start()
    try:
        await _idling(orchestrator, mailbox.id)
        await _other(bed, flag=(1, "\\Seen"))
        await _other(bed, expunge=1)
        client = await bed.imap()
        try:
            await client.create("Elsewhere")
        finally:
            await client.logout()
        await asyncio.sleep(1.5)
        watcher = orchestrator.watchers[mailbox.id]
        assert watcher.changes.checks == 0
        assert await _changed(bed, mailbox.id) == []
    finally:
        await orchestrator.stop()
