"""Bounded-load weighted rendezvous hashing: balanced, weighted, stable, deterministic, fast."""

from __future__ import annotations

from collections import Counter

import pytest

from mailport.fleet.assignment import Assigner, assign, capacity


def _ids(n: int) -> list[str]:
    return [f"mbx_{i:08d}" for i in range(n)]


def _workers(count: int, weights: list[float] | None = None) -> dict[str, float]:
    weights = weights or [1.0] * count
    return {f"host-{i}:{100 + i}:{i:04x}": weights[i] for i in range(count)}


@pytest.mark.parametrize("n", [10, 30, 100, 10_000])
@pytest.mark.parametrize("w", [1, 2, 3, 5])
def test_every_worker_gets_its_share_within_five_percent_plus_one(n: int, w: int) -> None:
    workers = _workers(w)
    result = assign(_ids(n), workers)
    assert sorted(result) == sorted(_ids(n))  # every mailbox has a worker
    counts = Counter(result.values())
    share = n / w
    for worker in workers:
        assert abs(counts[worker] - share) <= 0.05 * share + 1, (worker, counts[worker], share)


def test_weights_are_honoured() -> None:
    workers = _workers(3, [1.0, 2.0, 3.0])
    counts = Counter(assign(_ids(6_000), workers).values())
    for worker, weight in workers.items():
        share = 6_000 * weight / 6
        assert abs(counts[worker] - share) <= 0.05 * share + 1, (worker, counts[worker], share)
    assert counts[max(workers, key=workers.__getitem__)] <= capacity(6_000, 3.0, 6.0)


def test_a_fourth_worker_takes_about_a_quarter_and_only_moves_to_it() -> None:
    ids, three = _ids(4_000), _workers(3)
    four = _workers(4)
    before, after = assign(ids, three), assign(ids, four)
    moved = [m for m in ids if before[m] != after[m]]
    newcomer = (set(four) - set(three)).pop()
    assert 0.2 * 4_000 <= len(moved) <= 0.3 * 4_000
    to_newcomer = [m for m in moved if after[m] == newcomer]
    assert len(to_newcomer) >= 0.9 * len(moved)  # little churn among the others


def test_a_leave_moves_the_leavers_share_and_little_else() -> None:
    ids, four = _ids(4_000), _workers(4)
    leaver = sorted(four)[1]
    three = {w: weight for w, weight in four.items() if w != leaver}
    before, after = assign(ids, four), assign(ids, three)
    theirs = [m for m in ids if before[m] == leaver]
    others_moved = [m for m in ids if before[m] != leaver and before[m] != after[m]]
    assert all(after[m] != leaver for m in ids)
    assert len(others_moved) <= 0.05 * len(ids)
    assert len(theirs) >= 0.2 * len(ids)


def test_deterministic_across_calls_instances_and_input_order() -> None:
    ids, workers = _ids(1_000), _workers(3)
    cached = Assigner()
    first = cached.assign(ids, workers)
    assert cached.assign(reversed(ids), dict(reversed(list(workers.items())))) == first
    assert assign(ids, workers) == first
    assert cached.mine(ids, workers, sorted(workers)[0]) == {
        m for m, w in first.items() if w == sorted(workers)[0]
    }


def test_nothing_to_assign_or_nobody_to_assign_it_to() -> None:
    assert assign([], _workers(2)) == {}
    assert assign(_ids(5), {}) == {}
    assert assign(_ids(5), {"a": 0.0}) == {}


def test_recomputing_reuses_every_cached_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """A recompute with nothing changed hashes nothing; a join hashes only the newcomer's
    column (counted, not timed: the time is ``bench/fleet.py``'s, under any load)."""
    from mailport.fleet import assignment

    calls = {"score": 0, "order": 0}
    real_score, real_order = assignment.score, assignment.order_key

    def counted_score(worker: str, mailbox: str, weight: float) -> float:
        calls["score"] += 1
        return real_score(worker, mailbox, weight)

    def counted_order(mailbox: str) -> int:
        calls["order"] += 1
        return real_order(mailbox)

    monkeypatch.setattr(assignment, "score", counted_score)
    monkeypatch.setattr(assignment, "order_key", counted_order)
    ids, workers = _ids(10_000), _workers(3)
    cached = Assigner()
    first = cached.assign(ids, workers)
    assert calls == {"score": 30_000, "order": 10_000}
    assert cached.assign(ids, workers) == first
    assert calls == {"score": 30_000, "order": 10_000}
    changed = {**workers, "host-9:9:9": 1.0}
    joined = cached.assign(ids, changed)
    assert calls == {"score": 40_000, "order": 10_000}
    assert joined == assign(ids, changed)


def test_the_cache_never_changes_the_answer_through_joins_leaves_and_mailbox_changes() -> None:
    """The scores are cached per worker (not per mailbox, for memory): whatever the sequence of
    changes, a cached assigner answers as a fresh computation does."""
    ids, workers = _ids(2_000), _workers(4, [1.0, 2.0, 1.0, 0.5])
    cached = Assigner()
    steps = [
        (ids, workers),
        (ids, {k: v for k, v in list(workers.items())[:3]}),  # a leave
        (ids[100:] + ["mbx_new_1", "mbx_new_2"], workers),  # the leaver back, mailboxes come and go
        (ids[100:], {**workers, "host-9:9:9": 1.5}),  # a join
        (ids[100:], {**workers, "host-9:9:9": 3.0}),  # a weight changed
        (ids[100:], {**workers, "host-9:9:9": 3.0}),  # nothing changed
    ]
    for mailboxes, members in steps:
        assert cached.assign(mailboxes, members) == assign(mailboxes, members)
