"""The I/O half of the IMAP client: one ``asyncio.Protocol`` that frames and routes responses.

An ``asyncio.Protocol`` rather than streams because an idle connection then costs no task,
no ``StreamReader`` buffer and no pending read coroutine -- only this object, the framer and
the TLS transport (see :mod:`mailport.imap.transport`). Everything it receives goes through
the pure :class:`~mailport.imap.parser.ResponseSplitter`; complete responses are routed:

* the greeting resolves :attr:`ImapProtocol.greeting`;
* a tagged completion resolves the running :class:`PendingCommand`;
* ``+`` continuations go to the running command (literals, AUTHENTICATE, IDLE);
* untagged responses the running command asked for are collected on it; every other
  untagged response is handed to ``on_untagged`` (the client turns those into events);
* EXISTS, EXPUNGE and VANISHED, collected or not, also update :attr:`ImapProtocol.count`
  (:mod:`~mailport.imap.counting`).

When the connection drops, a framing error occurs or the caller gives up, every waiter fails
with a typed error at once, so nothing can hang on a dead socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from mailport.errors import ConnectionLostError, MailportError, ProtocolError
from mailport.imap.counting import MessageCount
from mailport.imap.models import FetchedMessage
from mailport.imap.parser import (
    Response,
    ResponseSplitter,
    parse_fetch,
    parse_status_text,
    sequence_set_size,
    split_tagged,
    untagged_head,
)

log = logging.getLogger(__name__)

Untagged = tuple[int | None, bytes, int, Response]  # (number, KIND, offset of the rest, response)
UntaggedHandler = Callable[[int | None, bytes, int, Response], None]
_COUNTED = frozenset({b"EXISTS", b"EXPUNGE", b"VANISHED"})


class PendingCommand:
    """A command waiting for its tagged completion."""

    __slots__ = (
        "tag",
        "done",
        "wants",
        "collected",
        "fetched",
        "seal_on_ok",
        "_continuations",
        "_cont_waiter",
    )

    def __init__(
        self, tag: bytes, done: asyncio.Future[tuple[bytes, bytes]], wants: frozenset[bytes]
    ) -> None:
        self.tag = tag
        self.done = done  # -> (status, rest of the tagged line)
        self.wants = wants
        self.collected: list[Untagged] = []
        # When a list, FETCH responses are parsed as they arrive (overlapping parsing with
        # the network) and appended here instead of to ``collected``.
        self.fetched: list[FetchedMessage] | None = None
        self.seal_on_ok = False  # STARTTLS: nothing may follow its OK in plaintext
        self._continuations: list[bytes] = []
        self._cont_waiter: asyncio.Future[bytes] | None = None

    def continuation(self, text: bytes) -> None:
        waiter = self._cont_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(text)
        else:
            self._continuations.append(text)

    async def next_continuation(self) -> bytes | None:
        """The next ``+`` line's text, or None when the command completed instead."""
        if self._continuations:
            return self._continuations.pop(0)
        if self.done.done():
            return None
        waiter: asyncio.Future[bytes] = self.done.get_loop().create_future()
        self._cont_waiter = waiter
        try:
            await asyncio.wait((waiter, self.done), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._cont_waiter = None
        if waiter.done():
            return waiter.result()
        waiter.cancel()
        self.done.result()  # raise the connection's error, if that is what ended it
        return None

    def fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)
            self.done.exception()  # mark retrieved: nobody may be awaiting (IDLE)
        if self._cont_waiter is not None and not self._cont_waiter.done():
            self._cont_waiter.set_exception(exc)


class ImapProtocol(asyncio.Protocol):
    """Frames the byte stream and routes responses; owns no policy."""

    __slots__ = (
        "transport",
        "splitter",
        "greeting",
        "current",
        "error",
        "bye",
        "sealed",
        "count",
        "_on_untagged",
        "_on_lost",
    )

    def __init__(
        self, *, max_literal: int, on_untagged: UntaggedHandler, on_lost: Callable[[MailportError], None]
    ) -> None:
        loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.splitter = ResponseSplitter(max_literal=max_literal)
        self.greeting: asyncio.Future[Response] = loop.create_future()
        self.current: PendingCommand | None = None
        self.error: MailportError | None = None  # set once the connection is unusable
        self.bye: str | None = None
        # Set after STARTTLS's OK until the TLS handshake: plaintext received then would be
        # a STARTTLS response injection (a man in the middle), so it is a protocol error.
        self.sealed = False
        self.count = MessageCount()  # the selected mailbox's, as this connection was told
        self._on_untagged = on_untagged
        self._on_lost = on_lost

    # ------------------------------------------------------------------ asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports (uvicorn's loop) do not subclass asyncio's.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            for response in self.splitter.feed(data):
                self.route(response)
            if self.sealed and self.splitter.pending:
                raise ProtocolError("the server sent plaintext after STARTTLS's OK (possible injection)")
        except MailportError as exc:
            self.fail(exc)
            if self.transport is not None:
                self.transport.abort()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.bye is not None:
            error: MailportError = ConnectionLostError(
                f"the server closed the connection: {self.bye}", server_said=self.bye
            )
        elif self.splitter.pending:
            error = ConnectionLostError("the server closed the connection in the middle of a response")
        else:
            error = ConnectionLostError("the server closed the connection")
        if exc is not None and self.bye is None:
            error.__cause__ = exc
        self.fail(error)

    # ------------------------------------------------------------------ routing
    def route(self, response: Response) -> None:
        """Handle one complete response (the framer calls it directly during a bulk FETCH)."""
        if self.sealed:
            raise ProtocolError("the server sent plaintext after STARTTLS's OK (possible injection)")
        first = response.lines[0]
        if first[:2] == b"* ":
            number, kind, offset = untagged_head(first)
            if not self.greeting.done():
                self.greeting.set_result(response)
                if kind == b"BYE":
                    self.bye = parse_status_text(first[offset:]).said()
                return
            if kind == b"BYE":
                self.bye = parse_status_text(first[offset:]).said()
            command = self.current
            if command is not None and kind in command.wants:
                if command.fetched is not None and kind == b"FETCH" and number is not None:
                    command.fetched.append(parse_fetch(number, response, offset))
                else:
                    if kind in _COUNTED:
                        self._count(number, kind, first[offset:])
                    command.collected.append((number, kind, offset, response))
            else:
                if kind in _COUNTED:
                    self._count(number, kind, first[offset:])
                self._on_untagged(number, kind, offset, response)
        elif first[:1] == b"+":
            command = self.current
            if command is None:
                raise ProtocolError(f"unexpected continuation request {first[:60]!r}")
            command.continuation(first[2:])
        else:
            if not self.greeting.done():
                raise ProtocolError(f"the server's greeting is not IMAP: {first[:60]!r}")
            tag, status, rest = split_tagged(first)
            command = self.current
            if command is None or tag != command.tag:
                raise ProtocolError(f"response for an unknown tag {tag[:20]!r}")
            if not command.done.done():
                command.done.set_result((status, rest))
                if command.seal_on_ok and status == b"OK":
                    self.sealed = True

    def _count(self, number: int | None, kind: bytes, rest: bytes) -> None:
        """Keep :attr:`count` (any command's responses count, SELECT's too)."""
        count = self.count
        if kind == b"EXISTS":
            if number is None:
                count.reset()
            else:
                count.on_exists(number)
        elif kind == b"EXPUNGE":
            count.on_expunged(1)
        else:  # VANISHED: (EARLIER) reports older expunges and leaves the count (RFC 7162 3.2.10)
            rest = rest.strip()
            if not rest.upper().startswith(b"(EARLIER)"):
                try:
                    count.on_expunged(sequence_set_size(rest))
                except ValueError:
                    count.reset()  # unreadable: the count is unknown until the next EXISTS

    # ------------------------------------------------------------------ failure
    def fail(self, exc: MailportError) -> None:
        """Fail every waiter once; the connection is unusable from now on."""
        if self.error is None:
            self.error = exc
        if not self.greeting.done():
            self.greeting.set_exception(exc)
            self.greeting.exception()  # mark retrieved: the caller may not be waiting yet
        if self.current is not None:
            self.current.fail(exc)
        self._on_lost(exc)

    def write(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        assert self.transport is not None
        self.transport.write(data)
