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
Collecting first keeps garbage out of the frozen set, and :func:`thaw` hands everything back to
the collector when the last runtime that froze stops (a host application, or a test process,
that starts and stops mailport many times keeps nothing frozen for good).
"""

from __future__ import annotations

import gc

_holders = 0  # runtimes (orchestrators) running with the heap frozen


def freeze_long_lived() -> None:
    """Collect, then freeze what survives: called at start-up, when what is alive is the
    process's long-lived part, and again once a mass start-up of watchers has settled."""
    global _holders
    _holders += 1
    gc.collect()
    gc.freeze()


def refreeze() -> None:
    """Freeze again what is alive now (the watchers started since), if a runtime holds the heap
    frozen; the caller has just collected (:func:`mailport.sync.orchestrator.release_free_memory`)."""
    if _holders:
        gc.freeze()


def thaw() -> None:
    """One runtime stopped; when it was the last, every frozen object is collectable again."""
    global _holders
    if _holders == 0:
        return
    _holders -= 1
    if _holders == 0:
        gc.unfreeze()
