"""A rolling restart under a steady stream of new mail: each of three workers in turn is stopped
with SIGTERM (it exits 0 after handing its mailboxes over, leaving no lease behind) and a new one
started; after each step every mailbox is held by a running worker, and at the end every message
is in the event log exactly once, no mailbox was ever watched by two workers at once, and no
worker that kept running lost a lease."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.e2e.fleet.conftest import MAILBOXES, FleetBed
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

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),  # the fleet's database
]


async def test_rolling_restart_under_mail_delivers_every_message_once(fleet_bed: FleetBed) -> None:
    fleet, dovecot = fleet_bed.fleet, fleet_bed.dovecot
    originals = fleet.start(3)
    _took, left = await wait_for(lambda: coverage_problems(fleet, fleet.running, fleet_bed.users), timeout=40)
    assert not left, f"{left}\n{fleet.logs()}"

    steps = []
    timeline = HolderTimeline(fleet)
    with DoubleWatchSampler(dovecot, fleet_bed.users.values()) as sampler:
        async with timeline:
            with MailPump(dovecot, fleet_bed.users.values(), rate=20, tag="roll") as pump:
                await asyncio.sleep(2)
                for old in originals:
                    began = time.monotonic()
                    stopped = await fleet.terminate(old)
                    assert await fleet.leases_of(old) == 0, f"{old.name} left leases behind"
                    fleet.start(1)
                    _covered, left = await wait_for(
                        lambda: coverage_problems(fleet, fleet.running, fleet_bed.users), timeout=30
                    )
                    assert not left, f"after restarting {old.name}: {left}\n{fleet.logs()}"
                    steps.append(
                        f"{old.name}: exit {stopped:.1f}s, all held {time.monotonic() - began:.1f}s, "
                        f"shares {await fleet.shares()}"
                    )
                await asyncio.sleep(2)
    print("\n".join(steps))
    shares = await fleet.shares()
    print(f"after the restart: {shares}, balance: {balance_problems(shares, MAILBOXES, tolerance=0.10)}")
    print(f"least lease time left seen per steady worker: {timeline.margins}")
    print(f"handoffs seen: {timeline.handoffs()}, leases lost by steady workers: {fleet.lost_leases()}")
    assert not pump.errors, pump.errors[:5]
    problems = await wait_exactly_once(fleet, pump.sent, fleet_bed.mailbox_of)
    assert not problems, f"{len(pump.sent)} sent: {problems}\n{fleet.logs()}"
    print(f"ingest delays: {summary(await delays(fleet, pump.sent, fleet_bed.mailbox_of))}")
    trouble = {
        "watched twice at once (Dovecot sessions)": sampler.doubles,
        "leases taken from workers that kept running": fleet.lost_leases(),
    }
    assert not any(trouble.values()), f"{trouble}; least lease time left {timeline.margins}\n{fleet.logs()}"
    assert not fleet.tracebacks(), fleet.logs()
    print(f"{len(pump.sent)} messages, each once")
