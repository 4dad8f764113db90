"""The delivery metrics: webhook attempts by result and the delivery latency histogram.

They live in :mod:`mailport.metrics` (one registry for ``GET /metrics``); this module names the
two objects delivery uses so the rest of the package does not care where they live.
"""

from __future__ import annotations

from mailport.metrics import DELIVERY_LATENCY, WEBHOOK_ATTEMPTS

__all__ = ["DELIVERY_LATENCY", "WEBHOOK_ATTEMPTS"]
