"""A worker SIGKILLed while mail arrives: no handover, no release. Its mailboxes are watched
again by the others within the lease time (plus a small margin), nothing delivered meanwhile is
lost or ingested twice, and no mailbox is watched by two workers at once."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from tests.e2e.fleet.conftest import LEASE_SECONDS, FleetBed
from tests.e2e.fleet.harness import (
    DoubleWatchSampler,
    HolderTimeline,
    MailPump,
    coverage_problems,
    delays,
    summary,
    wait_exactly_once,
    wait_for,
    wait_stable,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.serial,  # bounds the time to resume: three workers on two cores, alone
    pytest.mark.timeout(120),
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),  # the fleet's database
]

# noticing the death (its registration expires within the lease, the others re-read the live
# workers every lease / 3) and taking its leases one by one; measured 2–4 s on a loaded machine
MARGIN = 4.0


async def test_kill_9_mailboxes_resume_elsewhere_within_the_lease(fleet_bed: FleetBed) -> None:
    fleet, dovecot = fleet_bed.fleet, fleet_bed.dovecot
    fleet.start(3)
    took, left = await wait_for(lambda: coverage_problems(fleet, fleet.running, fleet_bed.users), timeout=40)
    assert not left, f"{left}\n{fleet.logs()}"
    settled = await wait_stable(fleet)  # a balancing fleet moves mailboxes after its start

    timeline = HolderTimeline(fleet)
    with DoubleWatchSampler(dovecot, fleet_bed.users.values()) as sampler:
        async with timeline:
            with MailPump(dovecot, fleet_bed.users.values(), rate=20, tag="kill") as pump:
                await asyncio.sleep(3)
                shares = await fleet.shares()
                victim = max(fleet.running, key=lambda w: shares[w.name])
                orphans = [m for m, pid in (await fleet.live_holders()).items() if pid == victim.pid]
                assert orphans, shares
                await fleet.kill(victim)
                began, killed_at = time.monotonic(), datetime.now(UTC)
                row = next(r for r in await fleet.registered() if r.pid == victim.pid)
                survivors = fleet.running
                resumed, left = await wait_for(
                    lambda: coverage_problems(fleet, survivors, orphans), timeout=LEASE_SECONDS + 15
                )
                registered = [(r.pid, r.state, r.expires_at - killed_at) for r in await fleet.registered()]
                histories = {m: timeline.history(m, after=began) for m in orphans[:3]}
                assert not left, f"{victim.name} killed: {left}\n{registered}\n{histories}\n{fleet.logs()}"
                moved = timeline.moved_at(orphans, to={w.pid for w in survivors}, after=began)
                print(f"killed {victim.name} holding {len(orphans)} of {shares}; resumed in {resumed:.1f}s")
                print(f"settled {settled:.1f}s after all were held")
                print(f"its registration ran out {(row.expires_at - killed_at).total_seconds():.1f}s after")
                print("each resumed after", sorted(round(t, 1) for t in moved.values() if t is not None))
                await asyncio.sleep(3)  # mail for the mailboxes that moved
                print(f"shares now {await fleet.shares()}, {time.monotonic() - began:.1f}s after the kill")
    assert not pump.errors, pump.errors[:5]
    problems = await wait_exactly_once(fleet, pump.sent, fleet_bed.mailbox_of)
    assert not problems, f"{len(pump.sent)} sent: {problems}\n{fleet.logs()}"
    print(f"least lease time left seen per steady worker: {timeline.margins}")
    trouble = {
        "resumed after lease + margin": resumed if resumed > LEASE_SECONDS + MARGIN else None,
        "watched twice at once (Dovecot sessions)": sampler.doubles,
        "leases taken from workers that kept running": fleet.lost_leases(),
    }
    assert not any(trouble.values()), f"{trouble}; least lease time left {timeline.margins}\n{fleet.logs()}"
    assert not fleet.tracebacks(), fleet.logs()
    print(f"ingest delays: {summary(await delays(fleet, pump.sent, fleet_bed.mailbox_of))}")
    print(f"{len(pump.sent)} messages, each once")
