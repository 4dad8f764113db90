"""RabbitMQ (the ``rabbitmq`` extra: aio-pika, Apache-2.0).

Publishes on a channel in **publisher confirm** mode: each publish returns after the broker's
``basic.ack`` (a ``basic.nack`` or a lost connection raises, and the publisher sends the message
again). Messages are persistent, ``content_type`` JSON, ``message_id`` = the event id (the
idempotency key; RabbitMQ itself does not deduplicate, consumers do), ``type`` = the event type
and the Mailport-* headers.

Where: ``?exchange=NAME`` (declared durable, ``?exchange_type=`` default ``topic``; routing key
``?routing_key=`` or else the event type, e.g. ``message.received``), or ``?queue=NAME`` (declared
durable, published through the default exchange). The URL's path is the virtual host.

Host guard: aio-pika opens its own socket, so it is handed the vetted address rather than the
name; its robust reconnects are not used (``aio_pika.connect``, not ``connect_robust``): the
publisher reconnects, through the guard again. Plain TCP only.
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


class RabbitTransport:
    def __init__(self, target: BrokerTarget, guard: HostGuard, *, timeout: float) -> None:
        self.target = target
        self.guard = guard
        self.timeout = timeout
        self._connection: Any = None
        self._exchange: Any = None
        self._routing_key: str | None = None

    async def connect(self) -> None:
        import aio_pika

        address = await vetted_address(self.target, self.guard)
        t = self.target
        self._connection = await aio_pika.connect(
            host=address,
            port=t.port,
            login=t.username.reveal() if t.username else "guest",
            password=t.password.reveal() if t.password else "guest",
            virtualhost=t.path or "/",
            timeout=self.timeout,
            client_properties={"connection_name": "mailport"},
        )
        channel = await self._connection.channel(publisher_confirms=True)
        queue = t.option("queue")
        exchange = t.option("exchange")
        if exchange:
            kind = aio_pika.ExchangeType(t.option("exchange_type", "topic"))
            self._exchange = await channel.declare_exchange(exchange, kind, durable=True)
            self._routing_key = t.option("routing_key")
        else:
            await channel.declare_queue(queue, durable=True)
            self._exchange = channel.default_exchange
            self._routing_key = queue

    async def publish(self, messages: Sequence[BrokerMessage]) -> None:
        import aio_pika
        from pamqp.commands import Basic

        for m in messages:
            message = aio_pika.Message(
                m.body,
                message_id=m.id,
                type=m.type,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers=dict(m.headers()),
            )
            routing_key = self._routing_key or m.type
            confirmed = await self._exchange.publish(message, routing_key=routing_key, timeout=self.timeout)
            if not isinstance(confirmed, Basic.Ack):
                raise ConnectionError(f"RabbitMQ did not confirm event {m.seq} ({type(confirmed).__name__})")

    async def aclose(self) -> None:
        connection, self._connection, self._exchange = self._connection, None, None
        if connection is not None:
            try:
                await connection.close()
            except Exception:  # closing a broken connection
                log.debug("closing the RabbitMQ connection failed", exc_info=True)
