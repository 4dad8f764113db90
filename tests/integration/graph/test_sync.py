"""The Graph connector's ingestion end to end through ``serve``'s app: push notifications over
the real ``/v1/push/graph/<channel>`` route wake the watcher, new mail is delivered exactly once
(by idempotency key) with IMAP's payload keys and ``source.graph``, under the fake Graph's faults."""

from __future__ import annotations

import time

from mailport.messages import parse_message
from tests.fixtures.graph import graph, graph_fake, graph_providers_file, graph_settings  # noqa: F401
from tests.integration.graph.sync_bed import SyncBed, configure, make_message, sync_bed  # noqa: F401

PUSH_DEADLINE = 5.0  # well under the 300 s fallback poll and the 3600 s check interval


async def test_push_delivers_new_mail_once_with_imaps_payload_keys(sync_bed: SyncBed):
    mailbox, account = await sync_bed.mailbox()
    [subscription] = await sync_bed.subscribed(mailbox.id)
    remote = sync_bed.fake.subscriptions[subscription]
    assert remote.resource == f"me/mailFolders('{account.well_known['inbox']}')/messages"
    assert remote.notification_url.startswith(f"{sync_bed.url}/v1/push/graph/pch_")
    assert remote.lifecycle_url == remote.notification_url
    assert remote.change_types == {"created", "updated", "deleted"}
    started = time.monotonic()
    raws = [make_message(f"push {i}") for i in range(3)]
    ids = [account.add(raw) for raw in raws]
    found = await sync_bed.exactly(mailbox.id, [f"push {i}" for i in range(3)])
    assert time.monotonic() - started < PUSH_DEADLINE
    expected = set(parse_message(raws[0], mailbox_id=mailbox.id, folder="INBOX").to_dict()) | {
        "id",
        "connector",
        "ref",
        "source",
        "oversized",
    }
    for event in found:
        assert set(event.payload) == expected
        assert event.payload["connector"] == "graph"
        assert event.payload["folder"] == "INBOX"
        graph_source = event.payload["source"]["graph"]
        assert set(graph_source) == {"id", "conversation_id", "folder_id", "change_key"}
        assert graph_source["id"] in ids and graph_source["folder_id"] == account.well_known["inbox"]
        assert event.idempotency_key == f"msg:{mailbox.id}:{account.well_known['inbox']}:{graph_source['id']}"
