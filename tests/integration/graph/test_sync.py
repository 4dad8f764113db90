"""The Graph connector's ingestion end to end through ``serve``'s app: push notifications over
the real ``/v1/push/graph/<channel>`` route wake the watcher, new mail is delivered exactly once
(by idempotency key) with IMAP's payload keys and ``source.graph``, under the fake Graph's faults."""

from __future__ import annotations

import asyncio
import time

from mailport.messages import parse_message
from tests.integration.graph.sync_bed import SyncBed, make_message, wait_for

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


async def test_token_expiry_throttling_and_mailbox_concurrency_lose_and_repeat_nothing(sync_bed: SyncBed):
    mailbox, account = await sync_bed.mailbox()
    await sync_bed.subscribed(mailbox.id)
    fake = sync_bed.fake
    fake.faults.fail_next(401, 1, path_contains="/delta")  # the access token expired: one refresh
    account.add(make_message("after 401"))
    await sync_bed.exactly(mailbox.id, ["after 401"], settle=0.1)
    fake.faults.fail_next(429, 2, retry_after=1, path_contains="/$value")
    account.add(make_message("after 429"))
    await sync_bed.exactly(mailbox.id, ["after 401", "after 429"], settle=0.1)
    throttled = [r for r in fake.requests if r.status == 429 and r.path.endswith("/$value")]
    assert len(throttled) >= 2
    # MailboxConcurrency: the fake allows 2 requests in flight, mailport sends up to 4
    fake.concurrency_limit, fake.latency = 2, 0.05
    subjects = ["after 401", "after 429", *(f"burst {i}" for i in range(12))]
    for subject in subjects[2:]:
        account.add(make_message(subject))
    await sync_bed.exactly(mailbox.id, subjects)
    assert any(r.status == 429 for r in fake.requests if r.path.endswith("/$value"))
    assert max(fake.peak_in_flight.values()) <= 4


async def test_an_expired_delta_token_is_recovered_without_a_gap_or_a_duplicate(sync_bed: SyncBed):
    mailbox, account = await sync_bed.mailbox()
    await sync_bed.subscribed(mailbox.id)
    account.add(make_message("before"))
    await sync_bed.exactly(mailbox.id, ["before"], settle=0.1)
    account.expire_deltas()  # every delta link answers 410 syncStateNotFound from now on
    account.add(make_message("in the gap 1"))
    account.add(make_message("in the gap 2"))
    found = await sync_bed.exactly(mailbox.id, ["before", "in the gap 1", "in the gap 2"])
    assert any(r.status == 410 for r in sync_bed.fake.requests if "/delta" in r.path)
    [connector] = sync_bed.connectors(mailbox.id)
    health = await connector.health()
    assert health.details["delta_recoveries"] == "1"
    assert {e.payload["ref"] for e in found} == {
        e.payload["ref"] for e in await sync_bed.received(mailbox.id)
    }
    resets = [e for e in await _events(sync_bed, mailbox.id) if e.type == "mailbox.reset"]
    assert resets == []  # the epoch did not change


async def test_duplicated_and_delayed_notifications_deliver_once(sync_bed: SyncBed):
    mailbox, account = await sync_bed.mailbox()
    await sync_bed.subscribed(mailbox.id)
    sync_bed.fake.faults.duplicate = 3
    sync_bed.fake.faults.delay, sync_bed.fake.faults.delay_count = 1.0, 2
    subjects = [f"noisy {i}" for i in range(4)]
    for subject in subjects:
        account.add(make_message(subject))
    await sync_bed.exactly(mailbox.id, subjects, settle=1.5)  # the delayed ones came meanwhile
    assert len([d for d in sync_bed.fake.deliveries if d.kind == "change" and d.status == 202]) >= 7


async def test_an_expired_subscription_is_recreated_and_push_goes_on(sync_bed: SyncBed):
    mailbox, account = await sync_bed.mailbox()
    [first] = await sync_bed.subscribed(mailbox.id)
    sync_bed.fake.expire_subscription(first)  # lapses: Graph sends subscriptionRemoved

    async def recreated() -> str | None:
        row = await sync_bed.services.subscriptions.get(mailbox.id, "INBOX")
        return (
            row.remote_id
            if row and row.remote_id != first and row.remote_id in sync_bed.fake.subscriptions
            else None
        )

    second = await wait_for(recreated, timeout=10)
    assert first not in sync_bed.fake.subscriptions and second != first
    started = time.monotonic()
    account.add(make_message("after recreate"))
    await sync_bed.exactly(mailbox.id, ["after recreate"], settle=0.1)
    assert time.monotonic() - started < PUSH_DEADLINE
    row = await sync_bed.services.subscriptions.get(mailbox.id, "INBOX")
    assert row is not None and row.lifecycle == {}


async def test_missed_notifications_are_caught_up_at_the_missed_event(sync_bed: SyncBed):
    mailbox, account = await sync_bed.mailbox()
    [subscription] = await sync_bed.subscribed(mailbox.id)
    account.add(make_message("first"))
    await sync_bed.exactly(mailbox.id, ["first"], settle=0.1)
    await sync_bed.idle(mailbox.id)  # the follower served the recorded wake-up too
    sync_bed.fake.faults.drop = 2
    account.add(make_message("lost 1"))
    account.add(make_message("lost 2"))
    await asyncio.sleep(0.5)
    assert len(await sync_bed.received(mailbox.id)) == 1  # nothing woke the watcher (poll: 300 s)
    sync_bed.fake.lifecycle(subscription, "missed")
    await sync_bed.exactly(mailbox.id, ["first", "lost 1", "lost 2"])


async def test_reauthorization_required_is_answered_and_notifications_resume(sync_bed: SyncBed):
    mailbox, account = await sync_bed.mailbox()
    [subscription] = await sync_bed.subscribed(mailbox.id)
    sync_bed.fake.lifecycle(subscription, "reauthorizationRequired")

    async def answered() -> bool:
        return any(
            r.path.endswith(f"/subscriptions/{subscription}/reauthorize") for r in sync_bed.fake.requests
        )

    await wait_for(answered, timeout=10)
    assert not sync_bed.fake.subscriptions[subscription].needs_reauth
    started = time.monotonic()
    account.add(make_message("after reauthorize"))
    await sync_bed.exactly(mailbox.id, ["after reauthorize"], settle=0.1)
    assert time.monotonic() - started < PUSH_DEADLINE


async def test_several_folders_each_subscribed_and_ingested_once(sync_bed: SyncBed):
    mailbox, account = await sync_bed.mailbox(folders=("INBOX", "Archive", "role:sent"))
    subscriptions = await sync_bed.subscribed(mailbox.id, 3)
    assert len(set(subscriptions)) == 3
    channels = await sync_bed.services.push.channels.for_mailbox(mailbox.id, "graph")
    assert len(channels) == 1  # one channel per mailbox, shared by its folders
    account.add(make_message("in inbox"))
    account.add(make_message("in archive"), folder="archive")
    account.add(make_message("in sent"), folder="sentitems")
    found = await sync_bed.exactly(mailbox.id, ["in inbox", "in archive", "in sent"])
    assert {e.payload["subject"]: e.payload["folder"] for e in found} == {
        "in inbox": "INBOX",
        "in archive": "Archive",
        "in sent": "Sent Items",
    }


async def test_dropped_notifications_are_made_up_by_the_fallback_poll(
    sync_bed_fast_poll: SyncBed,
):
    bed = sync_bed_fast_poll
    mailbox, account = await bed.mailbox()
    await bed.subscribed(mailbox.id)
    bed.fake.faults.drop = 10
    subjects = [f"dropped {i}" for i in range(3)]
    for subject in subjects:
        account.add(make_message(subject))
    await bed.exactly(mailbox.id, subjects)  # within a 1 s poll, though no notification came
    assert not [
        d
        for d in bed.fake.deliveries
        if d.kind == "change"
        and d.url.endswith(
            tuple(c.id for c in await bed.services.push.channels.for_mailbox(mailbox.id, "graph"))
        )
    ]


async def _events(bed: SyncBed, mailbox_id: str) -> list:  # type: ignore[type-arg]
    from tests.integration.sync.conftest import all_events

    return await all_events(bed.services, mailbox_id=mailbox_id)
