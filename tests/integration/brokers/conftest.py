"""The broker tests' sides: for each real local server (NATS with JetStream at 4222, RabbitMQ
at 5672 guest/guest, Redis at 6379), a destination with a unique name per test (parallel
workers never collide), a reader of what arrived, and its removal at teardown.

A server that is not running fails the test (it is never skipped).

Every async test here runs twice: on asyncio's loop and on uvloop's. The publishers run in the
process that delivers webhooks, which is serve's delivery child on uvloop (mailport.event_loop)
and any other process on asyncio's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.fixtures.loops import LoopFactories, both_loops

NATS_PORT, RABBIT_PORT, REDIS_PORT = 4222, 5672, 6379


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> LoopFactories:
    return both_loops()


@dataclass(frozen=True)
class Received:
    id: str
    idempotency_key: str
    mailbox_id: str
    seq: int
    body: dict[str, Any]


class NatsSide:
    port = NATS_PORT

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:12]
        self.stream, self.subject = f"MPT_{tag}", f"mailport.test.{tag}"
        self._nc: Any = None

    async def open(self) -> None:
        import nats

        self._nc = await nats.connect(f"nats://127.0.0.1:{NATS_PORT}", connect_timeout=5)

    def url(self, port: int) -> str:
        return f"nats://127.0.0.1:{port}?subject={self.subject}&stream={self.stream}"

    async def received(self) -> list[Received]:
        from nats.js.errors import NotFoundError

        js = self._nc.jetstream()
        try:
            info = await js.stream_info(self.stream)
        except NotFoundError:
            return []
        got: list[Received] = []
        if not info.state.messages:
            return got
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(self.stream, seq)
            h = msg.headers or {}
            assert h["Nats-Msg-Id"] == h["Mailport-Event-Id"]
            got.append(
                Received(
                    h["Nats-Msg-Id"],
                    h["Mailport-Idempotency-Key"],
                    h["Mailport-Mailbox-Id"],
                    int(h["Mailport-Seq"]),
                    json.loads(msg.data),
                )
            )
        return got

    async def close(self) -> None:
        if self._nc is not None:
            try:
                await self._nc.jetstream().delete_stream(self.stream)
            except Exception:  # never created
                pass
            await self._nc.close()


class RabbitSide:
    port = RABBIT_PORT

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:12]
        self.exchange, self.queue_name = f"mailport.test.{tag}", f"mailport.test.q.{tag}"
        self._got: list[Received] = []
        self._connection: Any = None
        self._queue: Any = None

    async def open(self) -> None:
        import aio_pika

        self._connection = await aio_pika.connect(host="127.0.0.1", port=RABBIT_PORT, timeout=5)
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(self.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        self._queue = await channel.declare_queue(self.queue_name, durable=True)
        await self._queue.bind(exchange, routing_key="#")

    def url(self, port: int) -> str:
        return f"amqp://guest:guest@127.0.0.1:{port}/?exchange={self.exchange}"

    async def received(self) -> list[Received]:
        while (message := await self._queue.get(no_ack=True, fail=False)) is not None:
            h = message.headers
            assert message.message_id == h["Mailport-Event-Id"]
            assert message.content_type == "application/json"
            self._got.append(
                Received(
                    str(message.message_id),
                    str(h["Mailport-Idempotency-Key"]),
                    str(h["Mailport-Mailbox-Id"]),
                    int(str(h["Mailport-Seq"])),
                    json.loads(message.body),
                )
            )
        return list(self._got)

    async def close(self) -> None:
        if self._connection is not None:
            channel = await self._connection.channel()
            await channel.queue_delete(self.queue_name)
            await channel.exchange_delete(self.exchange)
            await self._connection.close()


class RedisSide:
    port = REDIS_PORT

    def __init__(self) -> None:
        self.stream = f"mailport:test:{uuid.uuid4().hex[:12]}"
        self._client: Any = None

    async def open(self) -> None:
        from redis.asyncio import Redis

        self._client = Redis(host="127.0.0.1", port=REDIS_PORT, db=0)
        await self._client.ping()

    def url(self, port: int) -> str:
        return f"redis://127.0.0.1:{port}/0?stream={self.stream}"

    async def received(self) -> list[Received]:
        entries = await self._client.xrange(self.stream)
        return [
            Received(
                f[b"id"].decode(),
                f[b"idempotency_key"].decode(),
                f[b"mailbox_id"].decode(),
                int(f[b"seq"]),
                json.loads(f[b"body"]),
            )
            for _entry_id, f in entries
        ]

    async def close(self) -> None:
        if self._client is not None:
            await self._client.delete(self.stream)
            await self._client.aclose()


Side = NatsSide | RabbitSide | RedisSide


@pytest.fixture(params=["nats", "rabbitmq", "redis"])
async def side(request: pytest.FixtureRequest) -> AsyncIterator[Side]:
    made: Side = {"nats": NatsSide, "rabbitmq": RabbitSide, "redis": RedisSide}[request.param]()
    try:
        await made.open()
        yield made
    finally:
        await made.close()
