"""Three ``mailport worker`` processes on one database share sixty mailboxes evenly: each holds
a third within ±10 % (the design's bounded-load rendezvous hashing promises ±5 % + 1 above, and
at most ``ceil(1.05 · N / workers)``), every mailbox is held by exactly one running worker, and
Dovecot sees one IMAP session per mailbox."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.e2e.fleet.conftest import MAILBOXES, FleetBed
from tests.e2e.fleet.harness import balance_problems, dovecot_sessions, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),  # the fleet's database
]


async def test_three_workers_each_hold_a_third(fleet_bed: FleetBed) -> None:
    fleet = fleet_bed.fleet
    began = time.monotonic()
    fleet.start(3)

    async def problems() -> list[str]:
        found = balance_problems(await fleet.shares(), MAILBOXES, tolerance=0.10)
        sessions = dovecot_sessions(fleet_bed.dovecot)
        unwatched = [u for u in fleet_bed.users.values() if sessions[u] == 0]
        if unwatched:
            found.append(f"{len(unwatched)} mailboxes without an IMAP session")
        return found

    took, left = await wait_for(problems, timeout=40)
    assert not left, f"{left}\n{fleet.logs()}"
    print(f"balanced and connected {time.monotonic() - began:.1f}s after start ({took:.1f}s polling)")
    # and it stays that way: nothing moves while membership does not change
    first = await fleet.live_holders()
    await asyncio.sleep(3)
    assert await fleet.live_holders() == first
    sessions = dovecot_sessions(fleet_bed.dovecot)
    assert all(sessions[u] == 1 for u in fleet_bed.users.values()), sessions
    registered = await fleet.registered()
    assert sorted(r.pid for r in registered if r.state == "active") == sorted(w.pid for w in fleet.running)
    assert not fleet.tracebacks(), fleet.logs()
