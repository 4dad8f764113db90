"""Redis Streams (the ``redis`` extra: redis-py, MIT).

Each event is one ``XADD`` to ``?stream=`` (``*`` ids, so Redis orders them), with the fields
``id`` (the event id: the idempotency key; Redis does not deduplicate, consumers do),
``idempotency_key``, ``tenant_id``, ``mailbox_id``, ``type``, ``seq`` and ``body`` (the webhook
body). A batch goes in one pipeline, in order; it counts as published when every ``XADD`` has
answered with its entry id. ``?maxlen=N`` trims the stream approximately (``MAXLEN ~ N``).

Host guard: redis-py opens its own socket, so it is handed the vetted address rather than the
name. Its own retries on a broken connection are switched off (no retries): the publisher
reconnects, through the guard again. Plain TCP only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from mailport.brokers.messages import BrokerMessage
from mailport.brokers.targets import BrokerTarget
from mailport.brokers.transport import vetted_address
from mailport.net.guard import HostGuard

log = logging.getLogger(__name__)


class RedisTransport:
    def __init__(self, target: BrokerTarget, guard: HostGuard, *, timeout: float) -> None:
        self.target = target
        self.guard = guard
        self.timeout = timeout
        self.stream = target.option("stream") or ""
        maxlen = target.option("maxlen")
        self.maxlen = int(maxlen) if maxlen and maxlen.isdigit() else None
        self._client: Any = None

    async def connect(self) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        address = await vetted_address(self.target, self.guard)
        t = self.target
        self._client = Redis(
            host=address,
            port=t.port,
            db=int(t.path or 0),
            username=t.username.reveal() if t.username else None,
            password=t.password.reveal() if t.password else None,
            socket_connect_timeout=self.timeout,
            socket_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
            client_name="mailport",
        )
        await self._client.ping()

    async def publish(self, messages: Sequence[BrokerMessage]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for m in messages:
            fields = {
                "id": m.id,
                "idempotency_key": m.idempotency_key,
                "tenant_id": m.tenant_id,
                "mailbox_id": m.mailbox_id or "",
                "type": m.type,
                "seq": str(m.seq),
                "body": m.body,
            }
            pipe.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)
        replies = await pipe.execute()
        if len(replies) != len(messages) or not all(replies):
            raise ConnectionError("Redis did not answer every XADD")

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except Exception:  # closing a broken connection
                log.debug("closing the Redis connection failed", exc_info=True)
