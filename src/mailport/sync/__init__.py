"""Real-time ingestion: watchers (one per mailbox), the orchestrator that runs them, the
per-chunk pipeline and its SQL. See docs/ingestion.md."""

from mailport.sync.orchestrator import Orchestrator
from mailport.sync.watcher import Backoff, Watcher, WatcherOptions

__all__ = ["Backoff", "Orchestrator", "Watcher", "WatcherOptions"]
