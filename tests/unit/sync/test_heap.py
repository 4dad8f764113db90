"""The watchers' long-lived heap (mailport.sync.heap): frozen out of the full collections while
a runtime runs, collectable again once the last one stopped; garbage is collected, not frozen."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from mailport.sync import heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    assert gc.get_freeze_count() == 0
    yield
    while heap._holders:
        heap.thaw()
    gc.unfreeze()


def test_what_is_alive_is_frozen_and_thawed_by_the_last_holder() -> None:
    kept = _Node()
    heap.freeze_long_lived()
    assert gc.get_freeze_count() > 0
    assert not gc.is_tracked(kept) or kept not in gc.get_objects()  # out of every generation
    heap.freeze_long_lived()  # a second runtime
    heap.thaw()
    assert gc.get_freeze_count() > 0  # the first still runs
    heap.thaw()
    assert gc.get_freeze_count() == 0
    assert any(o is kept for o in gc.get_objects())
    heap.thaw()  # unbalanced: nothing happens
    assert gc.get_freeze_count() == 0


def test_garbage_is_collected_before_freezing_and_cycles_made_later_still_are() -> None:
    dropped = _Node()
    gone = weakref.ref(dropped)
    del dropped
    heap.freeze_long_lived()
    assert gone() is None  # collected, not frozen
    later = _Node()
    later_gone = weakref.ref(later)
    del later
    gc.collect()
    assert later_gone() is None  # allocated after the freeze: collected as usual


def test_young_collections_are_rarer_while_a_runtime_holds_the_heap() -> None:
    """Most of what a backlog allocates is freed by reference counting soon after: the youngest
    generation's threshold is raised while a runtime runs, and the process's own put back."""
    own = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        heap.freeze_long_lived()
        assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, 10, 10)
        heap.freeze_long_lived()
        heap.thaw()
        assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, 10, 10)  # the first still runs
        heap.thaw()
        assert gc.get_threshold() == (700, 10, 10)
        gc.set_threshold(50_000, 10, 10)  # a host application's own, higher: kept
        heap.freeze_long_lived()
        assert gc.get_threshold() == (50_000, 10, 10)
        heap.thaw()
        assert gc.get_threshold() == (50_000, 10, 10)
    finally:
        gc.set_threshold(*own)


def test_refreeze_only_while_a_runtime_holds_the_heap() -> None:
    heap.refreeze()
    assert gc.get_freeze_count() == 0
    heap.freeze_long_lived()
    started_later = [_Node() for _ in range(100)]
    assert _collectable(started_later) == len(started_later)
    heap.refreeze()
    # each object itself, not the frozen count: frozen objects freed meanwhile (by reference
    # counting, in this process's other threads) leave that count, so it may grow by less
    assert _collectable(started_later) == 0


def _collectable(objects: list[_Node]) -> int:
    """How many of ``objects`` are in a generation the collector walks (not frozen)."""
    walked = {id(o) for o in gc.get_objects()}
    return sum(id(o) in walked for o in objects)
