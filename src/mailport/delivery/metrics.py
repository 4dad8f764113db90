"""The delivery metrics: webhook attempts by result and the delivery latency histogram.

They belong to :mod:`mailport.metrics` (one registry for ``GET /metrics``); this module names
the two objects delivery uses so the rest of the package does not care where they live.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

DELIVERY_LATENCY = Histogram(
    "mailport_delivery_latency_seconds",
    "From the event appended to its delivery accepted (webhook 2xx, pull read)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
WEBHOOK_ATTEMPTS = Counter(
    "mailport_webhook_attempts", "Webhook delivery attempts by result", ["result"], registry=REGISTRY
)

__all__ = ["DELIVERY_LATENCY", "WEBHOOK_ATTEMPTS"]
