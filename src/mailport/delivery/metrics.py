"""The delivery metrics: webhook attempts by result, the delivery latency histogram, and the
``webhook_pending`` queue size.

They live in :mod:`mailport.metrics` (one registry for ``GET /metrics``); this module names the
objects delivery uses so the rest of the package does not care where they live.
"""

from __future__ import annotations

from mailport.metrics import DELIVERY_LATENCY, QUEUE_SIZE, WEBHOOK_ATTEMPTS

__all__ = ["DELIVERY_LATENCY", "QUEUE_SIZE", "WEBHOOK_ATTEMPTS"]
