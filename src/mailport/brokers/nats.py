"""NATS JetStream (the ``nats`` extra: nats-py, Apache-2.0).

Each event is published to ``?subject=`` with the ``Nats-Msg-Id`` header set to the event id,
so JetStream drops a copy published again within the stream's duplicate window (2 minutes by
default): a publish whose acknowledgement was lost in an outage is stored once. The publish
returns after JetStream's PubAck (the message is stored). ``?stream=`` creates the stream over
the subject when it does not exist; without it the stream must exist already.

Host guard: nats-py resolves and connects by itself, so it is handed the vetted address
(``nats://<address>:<port>``) rather than the name; nats-py's own reconnects and server
discovery are switched off (``allow_reconnect=False``: a server it learns of is never dialled)
so it connects nowhere else; the publisher reconnects, through the guard again. Plain TCP only.
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


async def _quiet(*_: Any) -> None:
    """nats-py's callbacks: failures reach the publisher as exceptions (logged there)."""


class NatsTransport:
    def __init__(self, target: BrokerTarget, guard: HostGuard, *, timeout: float) -> None:
        self.target = target
        self.guard = guard
        self.timeout = timeout
        self.subject = target.option("subject") or ""
        self._nc: Any = None
        self._js: Any = None

    async def connect(self) -> None:
        import nats

        address = await vetted_address(self.target, self.guard)
        host = f"[{address}]" if ":" in address else address
        t = self.target
        self._nc = await nats.connect(
            servers=[f"nats://{host}:{t.port}"],
            user=t.username.reveal() if t.username else None,
            password=t.password.reveal() if t.password else None,
            name="mailport",
            connect_timeout=self.timeout,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            dont_randomize=True,
            error_cb=_quiet,
            disconnected_cb=_quiet,
            closed_cb=_quiet,
        )
        self._js = self._nc.jetstream(timeout=self.timeout)
        stream = t.option("stream")
        if stream:
            await self._ensure_stream(stream)

    async def _ensure_stream(self, stream: str) -> None:
        from nats.js.errors import NotFoundError

        try:
            await self._js.stream_info(stream)
        except NotFoundError:
            await self._js.add_stream(name=stream, subjects=[self.subject])

    async def publish(self, messages: Sequence[BrokerMessage]) -> None:
        for message in messages:
            headers = {"Nats-Msg-Id": message.id, **message.headers()}
            await self._js.publish(self.subject, message.body, timeout=self.timeout, headers=headers)

    async def aclose(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            try:
                await nc.close()
            except Exception:  # closing a broken connection
                log.debug("closing the NATS connection failed", exc_info=True)
