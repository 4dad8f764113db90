"""The stats a worker heartbeats (mailport.fleet.stats), read from a Prometheus registry of the
test's own with the same metric names as mailport.metrics: counts, gauges, connects of the last
minute, and zeros for what a process never registered."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge

from mailport.fleet.stats import StatsCollector, collect, rss_bytes


class Metrics:
    def __init__(self, *, fenced: bool = True) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connects = Counter("mailport_connects", "", registry=r)
        self.lease_losses = Counter("mailport_lease_losses", "", registry=r)
        self.connections = Gauge("mailport_connections", "", ["state"], registry=r)
        self.watchers = Gauge("mailport_watchers", "", registry=r)
        self.queue = Gauge("mailport_queue_size", "", ["queue"], registry=r)
        if fenced:
            self.fenced = Counter("mailport_fenced_writes_refused", "", registry=r)


class Holder:
    def __init__(
        self, watchers: Mapping[str, object], folder_watchers: Mapping[str, Sequence[object]]
    ) -> None:
        self.watchers = watchers
        self.folder_watchers = folder_watchers


def test_collect_reads_the_counters_and_gauges_by_name() -> None:
    m = Metrics()
    m.lease_losses.inc(2)
    m.fenced.inc(5)
    m.connections.labels(state="connected").set(3)
    m.connections.labels(state="connecting").set(2)
    m.watchers.set(4)
    m.queue.labels(queue="events_unaccepted").set(17)
    m.queue.labels(queue="webhook_pending").set(99)  # not one of a worker's queues
    stats = collect(registry=m.registry, connects_per_minute=12.345, sends_due=6)
    assert stats["mailboxes"] == 4 and stats["watchers"] == 5  # the orchestrator's gauges
    assert stats["connects_per_minute"] == 12.35
    assert stats["queues"] == {"connect_waiting": 2, "events_unaccepted": 17, "sends_due": 6}
    assert (stats["lease_losses"], stats["fenced_writes_refused"]) == (2, 5)
    assert stats["rss_bytes"] > 10_000_000  # a Python process with pydantic and SQLAlchemy loaded


def test_the_orchestrator_counts_mailboxes_and_folder_watchers() -> None:
    holder = Holder({"mbx_1": object(), "mbx_2": object()}, {"mbx_1": [object(), object()], "mbx_2": []})
    stats = collect(holder, registry=Metrics().registry)
    assert (stats["mailboxes"], stats["watchers"]) == (2, 4)


def test_a_metric_this_process_never_registered_reads_zero() -> None:
    stats = collect(registry=Metrics(fenced=False).registry)
    assert stats["fenced_writes_refused"] == 0 and stats["lease_losses"] == 0
    assert stats["queues"] == {"connect_waiting": 0, "events_unaccepted": 0, "sends_due": 0}
    assert collect(registry=CollectorRegistry())["mailboxes"] == 0


def test_connects_per_minute_count_the_last_minute() -> None:
    m = Metrics()
    m.connects.inc(100)  # before the collector started: not this minute's
    now = [1000.0]
    source = StatsCollector(registry=m.registry, clock=lambda: now[0])
    assert source()["connects_per_minute"] == 0
    for _ in range(6):  # a heartbeat every 10 s, 5 connects in between
        now[0] += 10
        m.connects.inc(5)
        last = source()
    assert last["connects_per_minute"] == 30  # everything since start, a minute ago
    for _ in range(6):  # a quieter minute: 1 connect per 10 s
        now[0] += 10
        m.connects.inc(1)
        last = source()
    assert last["connects_per_minute"] == 6
    now[0] += 120  # two idle minutes, then a heartbeat
    assert source()["connects_per_minute"] == 0


def test_rss_is_the_resident_size_of_this_process() -> None:
    before = rss_bytes()
    ballast = bytearray(64 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page
    assert rss_bytes() - before > 48 * 1024 * 1024
    del ballast
