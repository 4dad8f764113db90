"""Listing a folder of 10,000 messages (the standard Dovecot bed): the first page is the
newest, paging with limit 500 visits every message exactly once in descending UID order, and a
page of 50 is fast (measured here without HTTP; the goal over HTTP is p50 <= 30 ms)."""

from __future__ import annotations

import statistics
import time

import pytest

from mailport.connectors import registry
from mailport.connectors.base import Connector
from mailport.connectors.mail import ListQuery
from tests.connectors.mailbed import make_mailbox
from tests.fixtures.big_mailbox import BigMailbox

pytestmark = pytest.mark.xdist_group("big_mailbox")


async def connected(big: BigMailbox) -> Connector:
    mailbox = make_mailbox("imap", big.user, big.password, big.dovecot.imap_port)
    connector = registry.create(mailbox, registry.ConnectorContext())
    await connector.connect()
    return connector


async def test_paging_through_10000_messages_visits_each_once_newest_first(big_mailbox: BigMailbox) -> None:
    connector = await connected(big_mailbox)
    try:
        subjects: list[str] = []
        cursor = None
        pages = 0
        page_two = (await connector.list_messages(ListQuery(limit=2))).next_cursor
        while True:
            page = await connector.list_messages(ListQuery(limit=500, cursor=cursor))
            subjects += [s.envelope.subject or "" for s in page.items]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert pages == 20
        assert subjects == [f"message {n}" for n in range(9_999, -1, -1)]
        none_seen = await connector.list_messages(ListQuery(unseen=False))  # windows down to UID 1
        assert none_seen.items == [] and none_seen.next_cursor is None
        unseen = await connector.list_messages(ListQuery(unseen=True, limit=2, cursor=page_two))
        assert [s.envelope.subject for s in unseen.items] == ["message 9997", "message 9996"]
    finally:
        await connector.disconnect()


@pytest.mark.serial
async def test_a_page_of_50_from_10000_messages_is_fast(big_mailbox: BigMailbox) -> None:
    connector = await connected(big_mailbox)
    try:
        first = await connector.list_messages(ListQuery(limit=50))  # warms Dovecot's caches
        assert [s.envelope.subject for s in first.items[:2]] == ["message 9999", "message 9998"]
        timings: list[float] = []
        cursor = first.next_cursor
        for n in range(30):
            started = time.perf_counter()
            page = await connector.list_messages(ListQuery(limit=50, cursor=cursor if n % 2 else None))
            timings.append(time.perf_counter() - started)
            assert len(page.items) == 50
        p50 = statistics.median(timings) * 1000
        print(f"list 50 of 10,000 over IMAP: p50 {p50:.1f} ms, max {max(timings) * 1000:.1f} ms")
        assert p50 < 100, f"p50 {p50:.1f} ms"  # a guard against O(folder) work; the machine is shared
    finally:
        await connector.disconnect()
