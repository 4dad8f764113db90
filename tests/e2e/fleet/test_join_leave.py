"""Workers join and leave a running fleet while mail arrives: a third worker joining two takes
its share within 30 s, a worker stopped with SIGTERM hands its mailboxes to the others within a
few seconds (well before its leases could expire), no mailbox is ever watched by two workers at
once (Dovecot's sessions, sampled throughout) or left unwatched at the end, and every message
delivered meanwhile is in the event log exactly once."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.e2e.fleet.conftest import LEASE_SECONDS, MAILBOXES, FleetBed
from tests.e2e.fleet.harness import (
    DoubleWatchSampler,
    HolderTimeline,
    MailPump,
    balance_problems,
    coverage_problems,
    delays,
    summary,
    wait_exactly_once,
    wait_for,
)

# the others notice the draining at once (NOTIFY), its watchers stop and release, the others
# take them within a second; measured 3–5 s on a loaded two-core machine
HANDOVER_MARGIN = 3.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.serial,  # bounds the handover time: three workers on two cores, alone
    pytest.mark.timeout(150),
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),  # the fleet's database
]


async def test_a_third_worker_joins_then_one_leaves_without_loss(fleet_bed: FleetBed) -> None:
    fleet, dovecot = fleet_bed.fleet, fleet_bed.dovecot

    async def balanced() -> list[str]:
        return balance_problems(await fleet.shares(), MAILBOXES, tolerance=0.10)

    fleet.start(2)
    took, left = await wait_for(balanced, timeout=40)
    assert not left, f"two workers: {left}\n{fleet.logs()}"
    print(f"two workers balanced after {took:.1f}s: {await fleet.shares()}")

    timeline = HolderTimeline(fleet)
    with DoubleWatchSampler(dovecot, fleet_bed.users.values()) as sampler:
        async with timeline:
            with MailPump(dovecot, fleet_bed.users.values(), rate=20, tag="join") as pump:
                await asyncio.sleep(2)  # mail flows before anything changes
                (third,) = fleet.start(1)
                took, left = await wait_for(balanced, timeout=30)
                assert not left, f"after the third joined: {left}\n{fleet.logs()}"
                print(f"third worker took its share {took:.1f}s after its start: {await fleet.shares()}")
                await asyncio.sleep(2)

                leaver = fleet.running[0]
                survivors = [w for w in fleet.running if w is not leaver]
                fleet.signal_term(leaver)
                began = time.monotonic()
                handover, left = await wait_for(
                    lambda: coverage_problems(fleet, survivors, fleet_bed.users), timeout=LEASE_SECONDS + 15
                )
                assert not left, f"after {leaver.name} left: {left}\n{fleet.logs()}"
                code = await asyncio.to_thread(leaver.proc.wait, 30)
                exited = time.monotonic() - began
                assert code == 0, leaver.log()
                # a graceful stop released every lease before the process exited (a crash leaves
                # them behind: on another host the others would wait for them to expire)
                assert await fleet.leases_of(leaver) == 0, "leases left behind by a graceful stop"
                print(f"{leaver.name} handed over in {handover:.1f}s, exited after {exited:.1f}s")
                took, left = await wait_for(balanced, timeout=15)
                assert not left, f"after {leaver.name} left: {left}\n{fleet.logs()}"
                await asyncio.sleep(2)  # mail for the mailboxes that moved
    assert not pump.errors, pump.errors[:5]
    problems = await wait_exactly_once(fleet, pump.sent, fleet_bed.mailbox_of)
    assert not problems, f"{len(pump.sent)} sent: {problems}\n{fleet.logs()}"
    print(f"least lease time left seen per steady worker: {timeline.margins}")
    trouble = {
        "slow handover": handover if handover > LEASE_SECONDS + HANDOVER_MARGIN else None,
        "watched twice at once (Dovecot sessions)": sampler.doubles,
        "leases taken from workers that kept running": fleet.lost_leases(),
    }
    assert not any(trouble.values()), f"{trouble}; least lease time left {timeline.margins}\n{fleet.logs()}"
    assert leaver.pid not in {r.pid for r in await fleet.registered()}, "the leaver is still registered"
    assert not fleet.tracebacks(), fleet.logs()
    print(f"ingest delays: {summary(await delays(fleet, pump.sent, fleet_bed.mailbox_of))}")
    print(f"{len(pump.sent)} messages, each once; {sampler.samples} session samples, no double watch")
