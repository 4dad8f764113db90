"""New mail's MIME through JSON ``$batch``: order and exactly-once under part faults (429 with
Retry-After on some parts, 404 on one whose message was deleted between the listing and the
fetch), one batch in flight per mailbox, a single message still a plain GET, and the exchanges
as Microsoft describes them."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from mailport.connectors.api_http import MailboxLimiter
from tests.fakes.graph import GraphFake
from tests.fixtures.graph import new_email
from tests.integration.graph.spec import check_batch, check_exchanges, load_spec
from tests.integration.graph.sync_bed import SyncBed, make_message
from tests.integration.graph.test_spec import raw


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return load_spec()


def throttled(envelopes: list[Any]) -> int:
    """Parts Graph answered 429 inside these envelopes."""
    return sum(1 for e in envelopes for r in e.response["responses"] if r["status"] == 429)


def value_gets(fake: GraphFake, mark: int) -> tuple[list[Any], list[Any], list[Any]]:
    """Since ``mark``: the ``$batch`` envelopes, their ``/$value`` parts, the plain ``/$value`` GETs."""
    new = fake.requests[mark:]
    envelopes = [e for e in new if e.path == "/v1.0/$batch"]
    parts = [e for e in new if e.batch_item and e.path.endswith("/$value")]
    plain = [e for e in new if not e.batch_item and e.path.endswith("/$value")]
    return envelopes, parts, plain


async def test_get_mimes_answers_in_order_through_throttled_parts_and_a_gone_message(
    graph: GraphFake, graph_client: Any, spec: dict[str, Any]
) -> None:
    email = new_email()
    account = graph.account(email)
    ids = [account.add(raw(f"batched {i}", email)) for i in range(25)]
    with graph.lock:
        mimes = [account.mime(account.messages[i]) for i in ids]
    graph.faults.batch_throttle = 2  # the first parts Graph runs answer 429 (Retry-After: 1)
    graph.faults.fail_next(429, 1, path_contains=f"{ids[22]}/$value")  # one in the second batch
    graph.faults.gone_on_fetch.add(ids[7])  # deleted between the delta page and the fetch
    mark = len(graph.requests)
    async with graph_client(email) as client:
        got = await client.get_mimes(ids)
        envelopes, parts, plain = value_gets(graph, mark)
        assert await client.get_mimes([ids[3]]) == [mimes[3]]
        assert await client.get_mimes([ids[7]]) == [None]
        assert await client.get_mimes([]) == []

    assert got == [None if i == 7 else mime for i, mime in enumerate(mimes)]
    assert ids[7] not in account.messages
    assert not plain, "more than one message never costs a GET each"
    assert all(len(e.body["requests"]) <= 20 for e in envelopes)
    assert len(envelopes) == 4  # 20 + 5, then the throttled parts of each again
    assert len(envelopes[0].body["requests"]) == 20
    assert throttled(envelopes) == 3
    assert sum(1 for p in parts if p.status == 404) == 1
    assert sorted(p.path for p in parts if p.status == 200) == sorted(
        f"/v1.0/me/messages/{i}/$value" for n, i in enumerate(ids) if n != 7
    )
    first = envelopes[0].response["responses"]
    assert [r["id"] for r in first] != sorted((r["id"] for r in first), key=int), (
        "the fake answers in no particular order, as Graph may"
    )
    ok = next(r for r in first if r["status"] == 200)
    assert ok["headers"]["Content-Type"] == "text/plain" and base64.b64decode(ok["body"])
    _, _, singles = value_gets(graph, mark)
    assert len(singles) == 2  # the single fetches were plain GETs
    assert check_exchanges(spec, graph.requests[mark:]) == []


def test_the_batch_check_refuses_a_mime_part_that_is_not_base64() -> None:
    body = {"requests": [{"id": "1", "method": "GET", "url": "/me/messages/x/$value"}]}
    good = {
        "responses": [{"id": "1", "status": 200, "headers": {"Content-Type": "text/plain"}, "body": "SGk="}]
    }
    assert check_batch(body, good) == []
    raw_mime = {"responses": [{"id": "1", "status": 200, "headers": {}, "body": "Subject: hi\r\n\r\nbody"}]}
    assert check_batch(body, raw_mime) == ["$batch response: a body that is not JSON must be base64"]
    unanswered = {"responses": []}
    assert check_batch(body, unanswered) == ["$batch response: every request is answered once, by its id"]


async def test_a_batch_holds_the_mailboxs_slots_all_or_none() -> None:
    """A batch waits for all the slots (Graph runs four parts at once) while the gets behind it
    wait too, and single requests and batches together never exceed the capacity."""
    limiter = MailboxLimiter(4)
    held: list[int] = [0]
    peak: list[int] = [0]
    order: list[str] = []

    async def use(name: str, slots: int) -> None:
        async with limiter.holding(slots):
            held[0] += min(slots, 4)
            peak[0] = max(peak[0], held[0])
            order.append(name)
            await asyncio.sleep(0.01)
            held[0] -= min(slots, 4)

    single = asyncio.Event()

    async def long_single() -> None:
        async with limiter.holding(1):
            order.append("single")
            await single.wait()

    first = asyncio.create_task(long_single())
    await asyncio.sleep(0)
    batches = [asyncio.create_task(use(f"batch {n}", 20)) for n in range(2)]
    singles = [asyncio.create_task(use(f"get {n}", 1)) for n in range(3)]
    await asyncio.sleep(0.05)
    assert order == ["single"], "a batch waits while a slot is taken, and the gets queue behind it"
    single.set()
    await asyncio.wait_for(asyncio.gather(first, *batches, *singles), 5)
    assert order[:2] == ["single", "batch 0"] and sorted(order[2:]) == ["batch 1", "get 0", "get 1", "get 2"]
    assert peak[0] == 4
    assert limiter._value == 4  # every slot given back


async def test_a_burst_is_ingested_through_batches_exactly_once_in_order(sync_bed: SyncBed) -> None:
    sync_bed.services.settings.max_message_bytes = 4096  # read when the watcher's connector is made
    mailbox, account = await sync_bed.mailbox()
    await sync_bed.subscribed(mailbox.id)
    fake = sync_bed.fake
    fake.faults.drop = 25  # no notification: the burst waits for one wake-up, so one delta page
    await sync_bed.idle(mailbox.id)  # the watcher's first round is over
    subjects = [f"burst {n:02d}" for n in range(25)]
    with fake.lock:  # a round still in flight on a slow machine sees the whole burst or none of it
        ids = [
            account.add(make_message(subject, "x" * 10_000 if n == 12 else "hello"))
            for n, subject in enumerate(subjects)
        ]
        fake.faults.batch_throttle = 2
        fake.faults.fail_next(429, 1, path_contains=f"{ids[21]}/$value")
        fake.faults.gone_on_fetch.add(ids[5])
    mark = len(fake.requests)
    await sync_bed.services.push.wake([mailbox.id])
    expected = [s for n, s in enumerate(subjects) if n != 5]
    found = await sync_bed.exactly(mailbox.id, expected)
    assert [e.payload["subject"] for e in found] == expected, "the folder's order"
    big = next(e.payload for e in found if e.payload["subject"] == "burst 12")
    assert big["oversized"] is True and big["text"] is None and big["size"] > 10_000
    assert all(e.payload["oversized"] is False for e in found if e.payload["subject"] != "burst 12")
    envelopes, parts, plain = value_gets(fake, mark)
    assert len(envelopes) >= 2 and not plain
    assert throttled(envelopes) == 3
    assert [p.status for p in parts if p.path.endswith(f"{ids[5]}/$value")] == [404]
    assert fake.peak_in_flight[account.email.lower()] <= 4
    assert ids[5] not in account.messages
