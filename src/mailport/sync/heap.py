"""The cyclic garbage collector and the watchers' long-lived heap.

Why: a full (generation 2) collection walks every object the collector tracks. By the time the
watchers run, the process holds ~160,000 objects that live as long as it does (modules,
SQLAlchemy's metadata and compiled statements, the service graph), and ingestion promotes
enough short-lived objects (a chunk's parsed messages, alive while it is stored) to trigger a
full collection every second or so of a backlog: ~100 ms of the event loop each time, every
watcher stalled meanwhile, ~15 % of the CPU of ``bench/ingest_backlog.py``. ``gc.freeze()``
(CPython 3.7+) moves what is alive into a generation that is never collected, so a full
collection then walks only what was allocated since.

What it costs: a reference cycle among the frozen objects that becomes garbage is not
reclaimed while they stay frozen (plain reference counting still frees everything else), e.g.
a watcher frozen after a mass start-up and stopped later. That is bounded: no more than what was
alive, and counted in the memory, when it was frozen.
Collecting the two younger generations first keeps recent garbage (what start-up just made)
out of the frozen set, and :func:`thaw` hands everything back to the collector when the last
runtime that froze stops (a host application, or a test process, that starts and stops mailport
many times keeps nothing frozen for good). Not a full collection: it walked all ~155,000 objects,
100-180 ms during which no watcher ran, inside the start of a backlog (issue 21: ~4 % of
``bench/ingest_backlog.py``'s 3.5 s), and found ~40 garbage objects more than the younger
generations' ~3 ms did; those stay frozen until the last :func:`thaw`.

While a runtime holds the heap, the youngest generation is collected every
:data:`YOUNG_THRESHOLD` allocations instead of CPython's 700 (3.13 made it 2,000). A collection
of the youngest generation walks what survived since the last one, and in a backlog most of what
it finds (a chunk's parsed messages, a webhook's request) is freed by reference counting a
moment later: 10,000 lets it die unwalked. Measured on ``bench/ingest_backlog.py`` (10,000
messages): ~530 young and ~50 middle collections, ~110 ms, became ~10 and none. What it costs is
at most that many young objects kept a little longer when they are cyclic garbage. The
thresholds the process had are put back by the last :func:`thaw`.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
_holders = 0  # runtimes (orchestrators) running with the heap frozen
_thresholds: tuple[int, int, int] | None = None  # the process's own, while a runtime holds the heap


def freeze_long_lived() -> None:
    """Collect the younger generations, then freeze what survives: called when the watchers
    start, when what is alive is the process's long-lived part (:func:`refreeze` again once a
    mass start-up of watchers has settled)."""
    global _holders, _thresholds
    _holders += 1
    gc.collect(1)
    gc.freeze()
    if _thresholds is None:
        _thresholds = gc.get_threshold()
        young, middle, old = _thresholds
        gc.set_threshold(max(young, YOUNG_THRESHOLD), middle, old)


def refreeze() -> None:
    """Freeze again what is alive now (the watchers started since), if a runtime holds the heap
    frozen; the caller has just collected (:func:`mailport.sync.orchestrator.release_free_memory`)."""
    if _holders:
        gc.freeze()


def thaw() -> None:
    """One runtime stopped; when it was the last, every frozen object is collectable again."""
    global _holders, _thresholds
    if _holders == 0:
        return
    _holders -= 1
    if _holders == 0:
        gc.unfreeze()
        if _thresholds is not None:
            gc.set_threshold(*_thresholds)
            _thresholds = None
