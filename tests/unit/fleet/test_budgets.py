"""The fleet budgets' pure parts and their behaviour in one process: the shares of the host
budget (weights, join and leave, the exact bound on rounding), the token bucket on an injected
clock, host slots that resize while logins wait, the connect gate's per-account refusal."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from mailport.errors import TooManyWatchedFoldersError
from mailport.fleet.budgets import FleetBudgets, TokenBucket, apportion, host_key, rate_share
from mailport.fleet.registry import API, WATCHERS, WorkerRow
from mailport.mailboxes.models import ProcessingSettings, Security, ServerSettings, WatchedFolder
from mailport.metrics import REGISTRY
from tests.unit.test_command_pool import make_mailbox

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def row(worker_id: str, weight: float = 1.0, roles: tuple[str, ...] = (WATCHERS,)) -> WorkerRow:
    return WorkerRow(
        id=worker_id,
        host="h",
        pid=1,
        roles=roles,
        weight=weight,
        state="active",
        version="t",
        started_at=T0,
        heartbeat_at=T0,
        expires_at=T0 + timedelta(seconds=30),
    )


# ---------------------------------------------------------------------- apportion


def test_equal_workers_share_the_host_budget_exactly() -> None:
    shares = apportion(10, {"a": 1, "b": 1, "c": 1})
    assert shares == {"a": 4, "b": 3, "c": 3}  # the spare slot to the smallest id
    naive = sum(math.ceil(10 * 1 / 3) for _ in range(3))
    assert naive == 12  # what ceil(H·w/Σw) per worker would let the fleet open


def test_weights_divide_in_proportion() -> None:
    assert apportion(10, {"big": 3, "small": 1}) == {"big": 8, "small": 2}  # 7.5 / 2.5
    assert apportion(12, {"a": 2, "b": 1, "c": 1}) == {"a": 6, "b": 3, "c": 3}


def test_every_worker_gets_one_even_when_its_weight_says_less() -> None:
    shares = apportion(10, {"huge": 100, "tiny1": 1, "tiny2": 1})
    assert shares == {"huge": 8, "tiny1": 1, "tiny2": 1}  # sum stays 10, not 12


def test_more_workers_than_logins_each_take_one() -> None:
    shares = apportion(3, {f"w{n}": 1 for n in range(5)})
    assert set(shares.values()) == {1} and sum(shares.values()) == 5  # max(H, W)


def test_the_shares_add_up_to_max_of_budget_and_workers_for_any_weights() -> None:
    rand = random.Random(20)
    for _ in range(3000):
        workers = rand.randint(1, 12)
        total = rand.randint(1, 60)
        weights = {f"w{n}": rand.choice([0.1, 0.5, 1, 1, 1, 2, 3.7, 10, 100]) for n in range(workers)}
        shares = apportion(total, weights)
        assert set(shares) == set(weights)
        assert sum(shares.values()) == max(total, workers), (total, weights, shares)
        assert min(shares.values()) >= 1
        if total >= workers:  # and never more than the rounded-up quota (+1 for the floor of 1)
            whole = sum(weights.values())
            for worker, share in shares.items():
                assert share <= max(1, math.ceil(total * weights[worker] / whole))


def test_every_worker_computes_the_same_map_whatever_the_row_order() -> None:
    weights = {"b": 1.0, "a": 1.0, "d": 2.0, "c": 1.0}
    first = apportion(7, weights)
    for order in itertools.permutations(weights):
        assert apportion(7, {k: weights[k] for k in order}) == first


def test_the_rate_divides_by_weight_and_adds_up() -> None:
    weights = {"a": 1.0, "b": 3.0}
    assert rate_share(100, weights, "a") == pytest.approx(25)
    assert sum(rate_share(100, weights, w) for w in weights) == pytest.approx(100)


# ---------------------------------------------------------------------- join and leave


def test_shares_follow_the_live_rows_as_workers_join_and_leave() -> None:
    budgets = FleetBudgets(None, "a", host_logins=10, connect_rate=90)
    assert budgets.host_share == 10 and budgets.rate_share == 90  # alone (or not registered yet)
    budgets.apply([row("a"), row("b"), row("c")])
    assert (budgets.host_share, budgets.workers) == (4, 3)
    assert budgets.rate_share == pytest.approx(30)
    budgets.apply([row("a"), row("c")])  # b left (or its row expired)
    assert budgets.host_share == 5 and budgets.rate_share == pytest.approx(45)
    budgets.apply([row("b"), row("c")])  # its own row not read yet: it counts itself
    assert budgets.workers == 3 and budgets.host_share == 4
    budgets.apply([row("a", 2.0), row("b"), row("c"), row("api1", roles=(API,))])
    assert budgets.workers == 3 and budgets.host_share == 5  # api-only rows take no host share
    sample = REGISTRY.get_sample_value("mailport_fleet_host_login_share", {"worker": "a"})
    assert sample == 5


async def test_a_waiting_login_goes_in_when_the_share_grows_and_none_over_a_shrunk_one() -> None:
    budgets = FleetBudgets(None, "a", host_logins=4, connect_rate=1000)
    budgets.apply([row("a"), row("b")])  # 2 each
    hold = asyncio.Event()
    inside = 0
    most = 0

    async def login() -> None:
        nonlocal inside, most
        async with budgets.login("IMAP.Example.TEST."):
            inside += 1
            most = max(most, inside)
            await hold.wait()
            inside -= 1

    tasks = [asyncio.create_task(login()) for _ in range(4)]
    await asyncio.sleep(0.01)
    assert inside == 2 and budgets.sizes("imap.example.test") == {"busy": 2, "waiting": 2, "limit": 2}
    waiting = REGISTRY.get_sample_value("mailport_fleet_logins_waiting", {"worker": "a"})
    assert waiting == 2
    budgets.apply([row("a")])  # b left: the whole budget
    await asyncio.sleep(0.01)
    assert inside == 4
    budgets.apply([row("a"), row("b"), row("c"), row("d")])  # shrinks to 1 with 4 inside
    more = [asyncio.create_task(login()) for _ in range(2)]
    await asyncio.sleep(0.01)
    assert inside == 4 and budgets.sizes("imap.example.test")["waiting"] == 2  # none let in
    hold.set()
    await asyncio.gather(*tasks, *more)
    assert most == 4 and budgets.sizes("imap.example.test")["busy"] == 0


async def test_a_busy_host_does_not_hold_up_another_host() -> None:
    budgets = FleetBudgets(None, "a", host_logins=1, connect_rate=1000, local_connects=2)
    hold = asyncio.Event()

    async def busy() -> None:
        async with budgets.login("busy.example"):
            await hold.wait()

    holders = [asyncio.create_task(busy()) for _ in range(5)]
    await asyncio.sleep(0.01)
    async with asyncio.timeout(1):
        async with budgets.login("other.example"):
            pass  # the 4 waiters of busy.example hold no process-wide connect slot
    hold.set()
    await asyncio.gather(*holders)


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    budgets = FleetBudgets(None, "a", host_logins=1, connect_rate=1000)
    hold = asyncio.Event()

    async def login() -> None:
        async with budgets.login("h"):
            await hold.wait()

    first = asyncio.create_task(login())
    second = asyncio.create_task(login())
    await asyncio.sleep(0.01)
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    hold.set()
    await first
    async with asyncio.timeout(1):
        async with budgets.login("h"):
            assert budgets.sizes("h") == {"busy": 1, "waiting": 0, "limit": 1}


# ---------------------------------------------------------------------- token bucket


class FakeTime:
    """A monotonic clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


async def test_the_bucket_gives_its_burst_then_its_rate() -> None:
    time = FakeTime()
    bucket = TokenBucket(4.0, burst_seconds=0.5, clock=time.clock, sleep=time.sleep)
    assert bucket.capacity == 2.0
    start = time.now
    for _ in range(2):
        await bucket.take()
    assert time.now == start  # the burst: no wait
    for _ in range(8):
        await bucket.take()
    assert time.now - start == pytest.approx(2.0)  # 8 more at 4 a second
    time.now += 10  # idle: refills to the capacity only
    assert bucket.try_take() and bucket.try_take() and not bucket.try_take()


async def test_a_bucket_never_holds_less_than_one_token_and_waiters_go_in_order() -> None:
    time = FakeTime()
    bucket = TokenBucket(0.5, clock=time.clock, sleep=time.sleep)  # one every 2 s
    assert bucket.capacity == 1.0
    order: list[int] = []

    async def take(n: int) -> None:
        await bucket.take()
        order.append(n)

    start = time.now
    await asyncio.gather(*(take(n) for n in range(4)))
    assert order == [0, 1, 2, 3] and time.now - start == pytest.approx(6.0)


async def test_a_new_rate_applies_from_now_and_caps_the_saved_tokens() -> None:
    time = FakeTime()
    bucket = TokenBucket(10.0, clock=time.clock, sleep=time.sleep)
    assert bucket.tokens == 10.0
    bucket.set_rate(2.0)  # a second worker joined with 4× the weight
    assert bucket.tokens == 2.0
    await bucket.take()
    await bucket.take()
    start = time.now
    await bucket.take()
    assert time.now - start == pytest.approx(0.5)


async def test_logins_wait_for_the_workers_rate_share() -> None:
    time = FakeTime()
    budgets = FleetBudgets(None, "a", host_logins=100, connect_rate=30, clock=time.clock, sleep=time.sleep)
    budgets.apply([row("a"), row("b"), row("c")])  # 10 a second each, 10 at once
    start = time.now
    for _ in range(30):
        async with budgets.login("h"):
            pass
    assert time.now - start == pytest.approx(2.0)  # 10 at once, then 20 at 10 a second


# ---------------------------------------------------------------------- the connect gate


def gmail(folders: int) -> object:
    settings = ProcessingSettings(folders=tuple(WatchedFolder(f"F{n}") for n in range(folders)))
    return make_mailbox(
        connector="imap", imap=ServerSettings("imap.gmail.com", 993, Security.SSL), settings=settings
    )


async def test_the_gate_refuses_folders_past_the_accounts_limit_before_connecting() -> None:
    budgets = FleetBudgets(None, "a", host_logins=5, connect_rate=1000)
    mailbox = gmail(12)  # Gmail: 15, 4 kept for the person's programs -> 11 folders
    async with budgets.gate(mailbox, 10):  # type: ignore[arg-type]
        assert budgets.sizes("imap.gmail.com")["busy"] == 1
    with pytest.raises(TooManyWatchedFoldersError) as refused:
        async with budgets.gate(mailbox, 11):  # type: ignore[arg-type]
            pytest.fail("connected past the limit")
    assert refused.value.code == "too_many_watched_folders" and refused.value.http_status == 422
    assert "watches 12 folders" in refused.value.message and "at most 11" in refused.value.hint
    assert budgets.sizes("imap.gmail.com")["busy"] == 0  # no slot taken by the refusal


async def test_one_gate_serves_a_watchers_reconnects() -> None:
    budgets = FleetBudgets(None, "a", host_logins=1, connect_rate=1000)
    gate = budgets.gate(make_mailbox(connector="imap"))
    for _ in range(3):
        async with gate:
            assert budgets.sizes("imap.example.test")["busy"] == 1
    assert budgets.sizes("imap.example.test")["busy"] == 0


def test_logins_are_counted_per_server_host() -> None:
    assert host_key(make_mailbox(connector="imap")) == "imap.example.test"
    pop3 = make_mailbox(connector="pop3", imap=None, pop3=ServerSettings("POP.Example.", 995, Security.SSL))
    assert host_key(pop3) == "pop.example"
    graph = dataclasses.replace(make_mailbox(), connector="graph", imap=None)
    assert host_key(graph) == "graph:api"
