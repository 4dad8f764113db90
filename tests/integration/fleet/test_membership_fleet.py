"""Several workers (orchestrators with their own owner ids, one process) share the mailboxes:
balanced, a joiner takes its share, a draining worker hands over, a dead one's mailboxes
resume after its lease, and a change reaches exactly the mailbox's owner through the log."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import update

from mailport.fleet import registry
from mailport.fleet.assignment import assign
from mailport.store.tables import mailboxes
from tests.integration.fleet.conftest import Fleet, postgres_only, wait_for


def _balanced(fleet: Fleet, count: int) -> None:
    counts = Counter({owner: len(held) for owner, held in fleet.holdings().items()})
    share = count / len(counts)
    for owner, held in counts.items():
        assert abs(held - share) <= 0.05 * share + 1, (owner, held, share)


@postgres_only
async def test_three_share_a_fourth_joins_one_drains(fleet: Fleet) -> None:
    ids = {m.id for m in await fleet.mailboxes(30)}
    one, two, three = [await fleet.member(n) for n in ("a", "b", "c")]
    await fleet.settled(ids, [one, two, three])
    _balanced(fleet, 30)
    expected = assign(ids, {m.owner: 1.0 for m in (one, two, three)})
    assert {m: o.owner for o in (one, two, three) for m in o.watchers} == expected  # everyone agrees

    four = await fleet.member("d")
    took = await fleet.settled(ids, [one, two, three, four])
    assert took < 5.0, took
    assert 5 <= len(four.watchers) <= 10  # about a quarter
    _balanced(fleet, 30)

    started = time.monotonic()
    await two.stop()  # drains: the others take its mailboxes as it releases them
    fleet.members.remove(two)
    await fleet.settled(ids, [one, three, four])
    assert time.monotonic() - started < 5.0
    _balanced(fleet, 30)
    async with fleet.services.database.connect() as conn:
        assert two.owner not in {w.id for w in await registry.everyone(conn)}  # deregistered


@postgres_only
async def test_a_dead_workers_mailboxes_resume_elsewhere_after_its_lease(fleet: Fleet) -> None:
    ids = {m.id for m in await fleet.mailboxes(12)}
    one = await fleet.member("a", lease_ttl=3)
    two = await fleet.member("b", lease_ttl=3)
    await fleet.settled(ids, [one, two])
    theirs = set(two.watchers)
    assert theirs

    started = time.monotonic()
    await two.stop(handover=False)  # as a killed process: no draining, leases and row left
    fleet.members.remove(two)
    await fleet.settled(ids, [one], timeout=15)
    took = time.monotonic() - started
    assert 1.5 < took < 8.0, took  # not before the row and the leases ran out (3 s), soon after
    assert theirs <= set(one.watchers)


async def test_one_worker_alone_watches_everything_and_follows_changes(fleet: Fleet) -> None:
    """SQLite and PostgreSQL: a single member is the whole fleet (today's behaviour)."""
    ids = {m.id for m in await fleet.mailboxes(5)}
    alone = await fleet.member("a")
    await fleet.settled(ids, [alone])
    extra = (await fleet.mailboxes(1, prefix="late"))[0]  # written by "another process"
    started = time.monotonic()
    await fleet.settled(ids | {extra.id}, [alone])
    assert time.monotonic() - started < 2.0


@postgres_only
async def test_a_change_reaches_exactly_the_owner_through_the_log(fleet: Fleet) -> None:
    ids = {m.id for m in await fleet.mailboxes(9)}
    members = [await fleet.member(n) for n in ("a", "b", "c")]
    await fleet.settled(ids, members)
    reads_before = {m.owner: m.changes.reads for m in members}

    created = (await fleet.mailboxes(1, prefix="new"))[0]  # straight to the database: no poke
    started = time.monotonic()
    await fleet.settled(ids | {created.id}, members)
    assert time.monotonic() - started < 2.0
    owners = [m for m in members if created.id in m.watchers]
    assert len(owners) == 1
    owner = owners[0]
    assert all(m.changes.reads > reads_before[m.owner] for m in members)

    first = owner.watchers[created.id]
    async with fleet.services.database.transaction() as conn:
        await conn.execute(
            update(mailboxes)
            .where(mailboxes.c.id == created.id)
            .values(check_interval=900, updated_at=datetime.now(UTC))
        )

    async def restarted() -> bool:
        watcher = owner.watchers.get(created.id)
        return watcher is not None and watcher is not first

    await wait_for(restarted, timeout=5)
    assert owner.watchers[created.id].mailbox.settings.check_interval == 900
    assert [m for m in members if created.id in m.watchers] == [owner]

    await fleet.services.mailboxes.repository.delete(fleet.tenant, created.id)

    async def gone() -> bool:
        return all(created.id not in m.watchers for m in members)

    await wait_for(gone, timeout=5)
    await fleet.settled(ids, members)


@postgres_only
async def test_weights_give_shares(fleet: Fleet) -> None:
    ids = {m.id for m in await fleet.mailboxes(30)}
    light = await fleet.member("a")
    heavy = fleet.members[0].__class__(
        fleet.services,
        owner="host-h:9:h",
        reconcile_interval=0.1,
        stagger_seconds=0,
        membership_refresh=0.5,
        weight=2.0,
    )
    fleet.members.append(heavy)
    await heavy.start()
    await fleet.settled(ids, [light, heavy])
    assert 18 <= len(heavy.watchers) <= 22 and 8 <= len(light.watchers) <= 12
    await asyncio.sleep(0)
