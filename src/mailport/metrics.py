"""Prometheus metrics of one process, in one module so every feature increments the same objects.

``GET /metrics`` renders :data:`REGISTRY` (a registry of our own, not the global default, so
tests and embedding applications never collide with other ``prometheus_client`` users).
Ingestion sets the connection and queue gauges and counts messages; delivery (webhooks, pull)
observes :data:`DELIVERY_LATENCY` and counts :data:`WEBHOOK_ATTEMPTS`; the command pools
(:mod:`mailport.mailboxes.pool`) report their connections, waits and refusals.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry(auto_describe=True)

CONNECTIONS = Gauge(
    "mailport_connections",
    "Mailbox watchers of this process by connection state",
    ["state"],
    registry=REGISTRY,
)
WATCHERS = Gauge("mailport_watchers", "Mailbox watchers running in this process", registry=REGISTRY)
MESSAGES_PROCESSED = Counter(
    "mailport_messages_processed", "Messages ingested (event appended)", registry=REGISTRY
)
MESSAGES_FAILED = Counter(
    "mailport_messages_failed",
    "Messages delivered with a parse error (still delivered, with parse_error set)",
    registry=REGISTRY,
)
MESSAGES_OVERSIZED = Counter(
    "mailport_messages_oversized", "Messages over the size limit, delivered headers only", registry=REGISTRY
)
INGEST_LATENCY = Histogram(
    "mailport_ingest_latency_seconds",
    "From the server's notification (or poll) to the event appended",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
DELIVERY_LATENCY = Histogram(
    "mailport_delivery_latency_seconds",
    "From the event appended to its delivery accepted (webhook 2xx, pull read)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
WEBHOOK_ATTEMPTS = Counter(
    "mailport_webhook_attempts", "Webhook delivery attempts by result", ["result"], registry=REGISTRY
)
TOKEN_REFRESHES = Counter(
    "mailport_token_refreshes",
    "OAuth token refreshes at the provider (ahead of expiry or after a rejection), by result",
    ["result"],
    registry=REGISTRY,
)
QUEUE_SIZE = Gauge("mailport_queue_size", "Items waiting, by queue", ["queue"], registry=REGISTRY)
RECONNECTS = Counter("mailport_reconnects", "Watcher reconnect attempts", registry=REGISTRY)
FENCED_WRITES_REFUSED = Counter(
    "mailport_fenced_writes_refused",
    "Writes refused because this process's lease or claim had moved on to another (a stale "
    "owner: paused past its lease), by what was refused",
    ["what"],
    registry=REGISTRY,
)
PUSH_NOTIFICATIONS = Counter(
    "mailport_push_notifications",
    "Requests on /v1/push by connector (known keys only) and result: handshake, accepted, refused",
    ["connector", "result"],
    registry=REGISTRY,
)
COMMAND_CONNECTIONS = Gauge(
    "mailport_command_connections",
    "Command connections of the per-mailbox pools (live API requests) by state: idle, in_use, connecting",
    ["state"],
    registry=REGISTRY,
)
COMMAND_WAIT = Histogram(
    "mailport_command_wait_seconds",
    "From a live request asking its mailbox's pool for a connection to having one (connect included)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
COMMAND_BUSY = Counter(
    "mailport_command_busy",
    "Live requests refused with 503 mailbox_busy (no command connection came free in time)",
    registry=REGISTRY,
)
COMMAND_POOL_SHRINKS = Counter(
    "mailport_command_pool_shrinks",
    "A mailbox's command pool made smaller because its server refused more connections",
    registry=REGISTRY,
)
# Gmail API / Graph (connectors/api_http.py): every HTTP request, by connector and status
# ("error" when no answer came), for quotas and the bench's requests per ingested message.
API_REQUESTS = Counter(
    "mailport_api_requests",
    "Mail API requests (Gmail API, Graph) by connector and HTTP status (error: no answer)",
    ["connector", "status"],
    registry=REGISTRY,
)
# API connectors (issue 17): a cursor the provider no longer had, recovered without a gap
SYNC_RECOVERIES = Counter(
    "mailport_sync_recoveries",
    "Cursors the provider expired, recovered by re-listing (Gmail historyId 404, Graph delta 410)",
    ["connector", "reason"],
    registry=REGISTRY,
)

__all__ = [
    "API_REQUESTS",
    "COMMAND_BUSY",
    "COMMAND_CONNECTIONS",
    "COMMAND_POOL_SHRINKS",
    "COMMAND_WAIT",
    "CONNECTIONS",
    "CONTENT_TYPE_LATEST",
    "DELIVERY_LATENCY",
    "INGEST_LATENCY",
    "MESSAGES_FAILED",
    "MESSAGES_OVERSIZED",
    "MESSAGES_PROCESSED",
    "PUSH_NOTIFICATIONS",
    "QUEUE_SIZE",
    "RECONNECTS",
    "SYNC_RECOVERIES",
    "REGISTRY",
    "TOKEN_REFRESHES",
    "WATCHERS",
    "WEBHOOK_ATTEMPTS",
    "render",
]


def render() -> bytes:
    """The text exposition format of every mailport metric."""
    return generate_latest(REGISTRY)


# The fleet (issue 20; mailport.fleet.stats reads these for the worker's heartbeat). Each worker
# serves its own /metrics (MAILPORT_WORKER_PORT), so nothing here is labelled per worker except
# the info gauge that names the process.
CONNECTS = Counter(
    "mailport_connects",
    "Mail server connections opened by this process's watchers (attempts, successful or not)",
    registry=REGISTRY,
)
LEASE_LOSSES = Counter(
    "mailport_lease_losses",
    "Watchers stopped because their mailbox's lease changed hands (another worker took it)",
    registry=REGISTRY,
)
WORKER_INFO = Gauge(
    "mailport_worker_info",
    "1, labelled with this worker's id (its lease holder id) and host",
    ["worker_id", "host"],
    registry=REGISTRY,
)
WORKER_MAILBOXES = Gauge(
    "mailport_worker_mailboxes", "Mailboxes whose watchers this worker holds", registry=REGISTRY
)


BROKER_PUBLISHED = Counter(
    "mailport_broker_published",
    "Events a broker acknowledged (NATS JetStream, RabbitMQ, Redis Streams), by broker name",
    ["broker"],
    registry=REGISTRY,
)
BROKER_FAILURES = Counter(
    "mailport_broker_failures",
    "Failed connects or publishes to a broker (retried with backoff, nothing skipped), by broker name",
    ["broker"],
    registry=REGISTRY,
)
BROKER_UP = Gauge(
    "mailport_broker_up",
    "1 while this process publishes to the broker and its last publish succeeded, else 0",
    ["broker"],
    registry=REGISTRY,
)
BROKER_LAG = Gauge(
    "mailport_broker_lag",
    "Events appended but not yet acknowledged by the broker (seen by the process holding its lease)",
    ["broker"],
    registry=REGISTRY,
)
